"""A private, loopback-only Samba ``smbd`` for interop tests and benchmarks.

Everything lives in a fresh temporary folder: smb.conf, passdb, lock/state/cache/pid
folders, logs and the shares. Nothing system-wide is touched. The SMB user does not have
to exist on the machine: when it does not, nss_wrapper (Debian package libnss-wrapper)
gives smbd a private passwd/group file, the way Samba's own selftest does.

The share uses the configuration of Samba's selftest ``[tmp]`` share (``acl_xattr
xattr_tdb streams_depot``, kernel change notify off): that is what Samba's smbtorture
figures in bench/README.md were measured with.

    with SambaServer() as ep:
        subprocess.run(["smbclient", ep.unc(), "-p", str(ep.port), ...])

``python3 -m interop.peers.samba`` starts one and waits for Ctrl-C, printing how to reach it.
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from interop.peers import (
    Endpoint,
    PeerError,
    free_port,
    port_is_open,
    processes_with_argument,
    stop_popen,
    stop_processes,
    wait_for_port,
)

__all__ = ["SambaServer", "find_sbin"]

# Samba's selftest [tmp] share: xattr_tdb keeps NT ACL and DOS attribute xattrs out of the
# file system (an external ext4 xattr block makes empty files report AllocationSize 4096,
# which smbtorture's CHECK_CREATED rejects); streams_depot because streams_xattr on top of
# xattr_tdb cannot delete streams.
TEST_VFS = ("acl_xattr", "xattr_tdb", "streams_depot")
TEST_UID = 31000


def find_sbin(name: str) -> str:
    """A Samba program, also when /usr/sbin is not on PATH (Debian's default for users)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which(name, path=path)
    if found is None:
        raise PeerError(
            f"{name} not found: apt-get install -y samba smbclient samba-testsuite libnss-wrapper"
        )
    return found


def _nss_wrapper_library() -> str:
    name = ctypes.util.find_library("nss_wrapper")
    if name and os.path.isabs(name):
        return name
    # Debian ships only the unversioned .so, which ldconfig's cache may not list
    for candidate in sorted(glob.glob("/usr/lib/*/libnss_wrapper.so*")) + sorted(
        glob.glob("/usr/lib*/libnss_wrapper.so*")
    ):
        return candidate
    raise PeerError("libnss_wrapper not found: apt-get install -y libnss-wrapper")


def _getent(database: str) -> str:
    out = subprocess.run(["getent", database], capture_output=True, text=True, check=False)
    return out.stdout


class SambaServer:
    """Context manager: a running smbd; ``__enter__`` returns its :class:`Endpoint`.

    ``encrypted_share`` names an extra share that requires encryption (None: no such
    share); ``extra_shares`` adds plain shares; ``global_options`` adds or overrides
    ``[global]`` lines (e.g. ``{"server max protocol": "SMB3_00"}``).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        addresses: Sequence[str] = ("127.0.0.1",),
        user: str = "tester",
        password: str = "Passw0rd!",
        share: str = "share",
        encrypted_share: str | None = "secure",
        extra_shares: Sequence[str] = (),
        vfs: Sequence[str] = TEST_VFS,
        kernel_change_notify: bool = False,
        torture_hooks: bool = True,
        min_protocol: str = "SMB2_02",
        max_protocol: str = "SMB3_11",
        global_options: Mapping[str, str] | None = None,
        log_level: int = 1,
        base_dir: str | None = None,
    ) -> None:
        for a in addresses:
            if not a.startswith("127."):
                raise PeerError(f"refusing non-loopback address {a}")
        if not addresses:
            raise PeerError("need at least one address")
        self.addresses = tuple(addresses)
        self.port = port
        self.user = user
        self.password = password
        self.share = share
        self.encrypted_share = encrypted_share
        self.extra_shares = tuple(extra_shares)
        self.vfs = tuple(vfs)
        self.kernel_change_notify = kernel_change_notify
        self.torture_hooks = torture_hooks
        self.min_protocol = min_protocol
        self.max_protocol = max_protocol
        self.global_options = dict(global_options or {})
        self.log_level = log_level
        self.base_dir = base_dir
        self.tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.endpoint: Endpoint | None = None
        self.exit_status: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Endpoint:
        if self.proc is not None:
            raise PeerError("already started")
        smbd = find_sbin("smbd")
        smbpasswd = find_sbin("smbpasswd")
        if os.geteuid() != 0:
            raise PeerError("a private smbd must run as root (it switches to the share user)")
        host = self.addresses[0]
        port = self.port if self.port is not None else free_port(host)
        for a in self.addresses:
            # smbd binds with SO_REUSEPORT: on a busy port it would silently share it
            if port_is_open(a, port):
                raise PeerError(f"{a}:{port} is already in use")
        self.tmp = tmp = Path(tempfile.mkdtemp(prefix="vmstor-samba.", dir=self.base_dir))
        try:
            return self._start(smbd, smbpasswd, tmp, host, port)
        except BaseException:
            self.stop()
            raise

    def _start(self, smbd: str, smbpasswd: str, tmp: Path, host: str, port: int) -> Endpoint:
        tmp.chmod(0o755)
        for d in ("lock", "state", "cache", "private", "pid", "log", "ncalrpc", "usershares"):
            (tmp / d).mkdir()
        (tmp / "private").chmod(0o700)
        shares = [self.share, *self.extra_shares]
        if self.encrypted_share:
            shares.append(self.encrypted_share)
        paths = {name: tmp / "shares" / name for name in shares}
        uid, gid = self._user_env(tmp)
        (tmp / "shares").mkdir()
        for p in paths.values():
            p.mkdir()
            os.chown(p, uid, gid)
            p.chmod(0o775)
        (tmp / "smb.conf").write_text(self._smb_conf(tmp, port, paths))
        pw = f"{self.password}\n{self.password}\n"
        out = subprocess.run(
            [smbpasswd, "-c", str(tmp / "smb.conf"), "-a", "-s", self.user],
            input=pw.encode(),
            env={**os.environ, **self.env},
            capture_output=True,
            check=False,
            timeout=60,
        )
        if out.returncode != 0:
            raise PeerError(f"smbpasswd failed: {out.stdout.decode()} {out.stderr.decode()}")
        with open(tmp / "log" / "smbd.out", "wb") as log:
            self.proc = subprocess.Popen(
                [smbd, "--foreground", "--no-process-group", "-s", str(tmp / "smb.conf")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        proc = self.proc
        try:
            wait_for_port(host, port, 30.0, lambda: proc.poll() is None, "smbd")
        except PeerError as e:
            raise PeerError(f"{e}\n{self.log_text()}") from None
        self.endpoint = Endpoint(
            kind="samba",
            host=host,
            port=port,
            share=self.share,
            user=self.user,
            password=self.password,
            share_path=paths[self.share],
            shares=paths,
            encrypted_share=self.encrypted_share,
            log_text=self.log_text,
        )
        return self.endpoint

    def stop(self) -> None:
        """Stop smbd and its helpers (per-client smbd, samba-dcerpcd), remove the folder."""
        if self.proc is not None:
            proc = self.proc
            self.proc = None

            self.exit_status = stop_popen(proc)
        if self.tmp is not None:
            # samba-dcerpcd (started on the first named-pipe open) detaches from smbd
            stop_processes(processes_with_argument(str(self.tmp / "smb.conf")))
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    # -- pieces ----------------------------------------------------------------------------

    def _user_env(self, tmp: Path) -> tuple[int, int]:
        """The share owner's uid/gid; sets up nss_wrapper when the user is not real."""
        try:
            entry = pwd.getpwnam(self.user)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            pass
        lib = _nss_wrapper_library()
        (tmp / "passwd").write_text(
            _getent("passwd") + f"{self.user}:x:{TEST_UID}:{TEST_UID}:test user:{tmp}:/bin/false\n"
        )
        (tmp / "group").write_text(_getent("group") + f"{self.user}:x:{TEST_UID}:\n")
        self.env = {
            "LD_PRELOAD": lib,
            "NSS_WRAPPER_PASSWD": str(tmp / "passwd"),
            "NSS_WRAPPER_GROUP": str(tmp / "group"),
        }
        return TEST_UID, TEST_UID

    def _smb_conf(self, tmp: Path, port: int, paths: Mapping[str, Path]) -> str:
        options = {
            "workgroup": "INTEROP",
            "netbios name": "INTEROPSMB",
            "server role": "standalone server",
            "server string": "interop samba",
            "interfaces": " ".join(f"{a}/8" for a in self.addresses),
            "bind interfaces only": "yes",
            "smb ports": str(port),
            "disable netbios": "yes",
            "server min protocol": self.min_protocol,
            "server max protocol": self.max_protocol,
            "server multi channel support": "yes",
            "server signing": "auto",
            "server smb encrypt": "if_required",
            "lock directory": f"{tmp}/lock",
            "state directory": f"{tmp}/state",
            "cache directory": f"{tmp}/cache",
            "private dir": f"{tmp}/private",
            "pid directory": f"{tmp}/pid",
            "ncalrpc dir": f"{tmp}/ncalrpc",
            "usershare path": f"{tmp}/usershares",
            "passdb backend": f"tdbsam:{tmp}/private/passdb.tdb",
            "log file": f"{tmp}/log/log.%m",
            "max log size": "0",
            "log level": str(self.log_level),
            "load printers": "no",
            "printing": "bsd",
            "printcap name": "/dev/null",
            "disable spoolss": "yes",
            "map to guest": "never",
            "smb2 leases": "yes",
            "kernel oplocks": "no",
            "kernel share modes": "no",
            "kernel change notify": "yes" if self.kernel_change_notify else "no",
            "posix locking": "no",
            "ea support": "yes",
            "store dos attributes": "yes",
            # test-only FSCTL that smbtorture's multichannel tests use to block a channel
            "smbd:FSCTL_SMBTORTURE": "yes" if self.torture_hooks else "no",
        }
        options.update(self.global_options)
        lines = ["[global]", *(f"\t{k} = {v}" for k, v in options.items())]
        for name, path in paths.items():
            lines += [
                "",
                f"[{name}]",
                f"\tpath = {path}",
                "\tread only = no",
                "\tdurable handles = yes",
                f"\tvfs objects = {' '.join(self.vfs)}",
                "\tmap acl inherit = yes",
            ]
            if name == self.encrypted_share:
                lines.append("\tserver smb encrypt = required")
        return "\n".join(lines) + "\n"

    def log_text(self, tail: int = 60) -> str:
        """The last lines of smbd's own output and its main log."""
        if self.tmp is None:
            return "(samba stopped; its logs were removed)"
        parts = []
        for name in ("smbd.out", "log.smbd"):
            p = self.tmp / "log" / name
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {p}\n" + "\n".join(lines))
        return "\n".join(parts) or "(no samba log yet)"


def main() -> None:
    import contextlib
    import signal
    import threading

    with SambaServer() as ep:
        print(
            textwrap.dedent(
                f"""\
                samba serving //{ep.host}/{ep.share} on port {ep.port}
                  smbclient {ep.unc()} -p {ep.port} -U '{ep.user}%{ep.password}' -m SMB3_11
                Ctrl-C stops it."""
            ),
            flush=True,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
