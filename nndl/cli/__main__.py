import sys

from nndl.cli import main

sys.exit(main())
