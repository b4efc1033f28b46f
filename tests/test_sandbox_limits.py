import nbformat, time, sys
from nndl.kernel.run import NotebookRun
from nndl.settings import Limits
def test_x():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(60)"), nbformat.v4.new_code_cell("after = 1")])
    with NotebookRun(nb, Limits(cell_timeout=3)) as run:
        t = time.time()
        print(run.execute(), run.restarts, time.time()-t, run.client.km.provisioner.process.pid, run.client.km.provisioner.pgid)
        print(nb.cells[0].outputs)
    assert 0
