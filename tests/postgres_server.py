"""A throwaway PostgreSQL server for the kit's tests, from Debian's packages.

`scripts/setup` installs Debian's ``postgresql`` package where it can; the
tests start their own server from its binaries (``/usr/lib/postgresql/<N>/bin``,
the newest, or the folder ``NNDL_PG_BIN`` names) in a temporary folder: trust
authentication, a Unix socket only (no TCP), no fsync. As root, initdb and the
server run as the ``postgres`` system user, since PostgreSQL refuses root.
"""

import glob
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile


class Unavailable(RuntimeError):
    """PostgreSQL is not installed here; the message says why (a test skips with it)."""


class ServerError(RuntimeError):
    """PostgreSQL is installed but initdb or the server failed (a test fails with it)."""


def find_bindir():
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Raises:
        Unavailable: none found.
    """
    override = os.environ.get("NNDL_PG_BIN")
    if override:
        candidates = [override]
    else:
        def version(path):
            name = pathlib.Path(path).parent.name
            return tuple(int(p) for p in name.split(".") if p.isdigit())
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    for folder in candidates:
        if all(os.access(os.path.join(folder, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return pathlib.Path(folder)
    where = f"NNDL_PG_BIN={override}" if override else "/usr/lib/postgresql/*/bin"
    raise Unavailable(f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in {where}; "
                      "install Debian's postgresql package (scripts/setup does, as root)")


class Server:
    """A PostgreSQL server in a temporary folder, reached through a Unix socket there."""

    PORT = 5432  # only names the socket file, in our own folder: no clash with other servers

    def __init__(self, bindir=None):
        self.bindir = pathlib.Path(bindir) if bindir else find_bindir()
        self.folder = None
        self.as_user = []
        self.log = None

    @property
    def socket_dir(self):
        return self.folder / "socket"

    def _run(self, tool, *args, timeout=120):
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args], cwd=self.folder,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log and self.log.exists() else ""
            raise ServerError(f"{tool} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}{log}")
        return done

    def start(self):
        """initdb, then start the server and wait until it accepts connections."""
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="nndl-pg-"))
        try:
            if os.geteuid() == 0:
                try:
                    user = pwd.getpwnam("postgres")
                except KeyError:
                    raise Unavailable("running as root and there is no 'postgres' user to run "
                                      "PostgreSQL as (initdb refuses root)") from None
                os.chown(self.folder, user.pw_uid, user.pw_gid)
                self.as_user = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
            data = self.folder / "data"
            self.log = self.folder / "server.log"
            self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--no-locale", "--no-sync")
            self.socket_dir.mkdir()
            if self.as_user:
                shutil.chown(self.socket_dir, "postgres", "postgres")
            with open(data / "postgresql.conf", "a") as conf:
                conf.write("\n# nndl tests: a throwaway server\n"
                           "listen_addresses = ''\n"
                           f"unix_socket_directories = '{self.socket_dir}'\n"
                           f"port = {self.PORT}\n"
                           "fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n")
            self._run("pg_ctl", "-D", str(data), "-l", str(self.log), "-w", "-t", "60", "start")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop the server at once (its data is thrown away) and remove the folder."""
        if self.folder is None:
            return
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop", timeout=60)
            except (ServerError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def url(self, database):
        """SQLAlchemy's URL of a database of this server."""
        return f"postgresql+psycopg2://postgres@/{database}?host={self.socket_dir}&port={self.PORT}"

    def create_database(self, name):
        """Create an empty database; returns its SQLAlchemy URL."""
        import psycopg2

        connection = psycopg2.connect(dbname="postgres", user="postgres", host=str(self.socket_dir),
                                      port=self.PORT)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)
