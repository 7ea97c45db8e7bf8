"""``vmstor serve`` in a temporary folder, for interop tests and benchmarks.

The helper writes a config (a free port on 127.0.0.1, the share on a folder of its own),
adds a user through ``vmstor user add --password-stdin`` exactly as an administrator
would, starts ``vmstor serve``, waits until the port accepts connections, and on exit
stops it with SIGTERM and checks that it exited with status 0. Its output (log) is kept
in the folder and available through :meth:`VmstorServer.log_text`.

    with VmstorServer(encrypted_share="secure") as ep:
        ...

``python3 -m interop.peers.vmstor`` starts one and waits for Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from interop.peers import Endpoint, PeerError, free_port, stop_popen, wait_for_port

__all__ = ["VmstorServer", "vmstor_command"]

REPO = Path(__file__).resolve().parents[2]
DIALECTS = ("2.0.2", "2.1", "3.0", "3.0.2", "3.1.1")


def vmstor_command() -> list[str]:
    """How to run the ``vmstor`` CLI with this interpreter (installed or from the tree)."""
    return [sys.executable, "-m", "vmstor.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # run the tree this file belongs to, also when the package is not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


class VmstorServer:
    """Context manager: a running ``vmstor serve``; ``__enter__`` returns its Endpoint.

    ``encrypt_share``: the main share requires encryption. ``encrypted_share``: the name of
    an extra share that requires encryption (None: none). ``extra_shares``: more plain
    shares. ``min_dialect``/``max_dialect``: "2.0.2" ... "3.1.1". ``server_options``: more
    ``[server]`` keys (TOML values given as Python bool/int/str). ``rdma_port``: also
    serve SMB Direct on that port through the userspace iWARP provider (``[rdma]``).
    ``torture_hooks``: answer smbtorture's test-only FSCTLs (``smbtorture_hooks = true``),
    as ``SambaServer(torture_hooks=True)`` sets ``smbd:FSCTL_SMBTORTURE = yes``.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        user: str = "tester",
        password: str = "Passw0rd!",
        share: str = "share",
        encrypt_share: bool = False,
        encrypted_share: str | None = "secure",
        extra_shares: Sequence[str] = (),
        min_dialect: str | None = None,
        max_dialect: str | None = None,
        server_options: dict[str, bool | int | str] | None = None,
        verbose: bool = False,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        base_dir: str | None = None,
        rdma_port: int | None = None,
        torture_hooks: bool = False,
    ) -> None:
        if not host.startswith("127."):
            raise PeerError(f"refusing non-loopback address {host}")
        for d in (min_dialect, max_dialect):
            if d is not None and d not in DIALECTS:
                raise PeerError(f"unknown dialect {d!r}; one of {', '.join(DIALECTS)}")
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.share = share
        self.encrypt_share = encrypt_share
        self.encrypted_share = encrypted_share
        self.extra_shares = tuple(extra_shares)
        self.min_dialect = min_dialect
        self.max_dialect = max_dialect
        self.server_options = dict(server_options or {})
        self.verbose = verbose
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.base_dir = base_dir
        self.rdma_port = rdma_port
        self.torture_hooks = torture_hooks
        self.tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint: Endpoint | None = None
        self.exit_status: int | None = None
        self._log_copy = ""

    @property
    def config_path(self) -> Path:
        if self.tmp is None:
            raise PeerError("not started")
        return self.tmp / "vmstor.toml"

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # do not hide the exception that ended the block behind a stop failure
        self.stop(check=exc_type is None)

    def start(self) -> Endpoint:
        if self.proc is not None:
            raise PeerError("already started")
        port = self.port if self.port is not None else free_port(self.host)
        self.tmp = tmp = Path(tempfile.mkdtemp(prefix="vmstor-serve.", dir=self.base_dir))
        try:
            return self._start(tmp, port)
        except BaseException:
            self.stop(check=False)
            raise

    def _config(self, port: int) -> str:
        server: dict[str, bool | int | str] = {}
        if self.min_dialect:
            server["min_dialect"] = self.min_dialect
        if self.max_dialect:
            server["max_dialect"] = self.max_dialect
        if self.torture_hooks:
            server["smbtorture_hooks"] = True
        server.update(self.server_options)
        lines = [
            "[server]",
            f"listen = [{_toml_str(f'{self.host}:{port}')}]",
            'state_dir = "state"',
        ]
        for k, v in server.items():
            value = (
                ("true" if v else "false")
                if isinstance(v, bool)
                else (str(v) if isinstance(v, int) else _toml_str(v))
            )
            lines.append(f"{k} = {value}")
        shares = [(self.share, self.encrypt_share)]
        shares += [(name, False) for name in self.extra_shares]
        if self.encrypted_share:
            shares.append((self.encrypted_share, True))
        for name, encrypt in shares:
            lines += [
                "",
                f"[shares.{name}]",
                f"path = {_toml_str('shares/' + name)}",
                f"encrypt = {'true' if encrypt else 'false'}",
                "read_only = false",
            ]
        if self.rdma_port is not None:
            listen = _toml_str(f"{self.host}:{self.rdma_port}")
            lines += ["", "[rdma]", f"listen = [{listen}]", 'provider = "iwarp"']
        return "\n".join(lines) + "\n"

    def _start(self, tmp: Path, port: int) -> Endpoint:
        names = [self.share, *self.extra_shares]
        if self.encrypted_share:
            names.append(self.encrypted_share)
        paths = {name: tmp / "shares" / name for name in names}
        for p in paths.values():
            p.mkdir(parents=True)
        self.config_path.write_text(self._config(port))
        add = subprocess.run(
            [
                *vmstor_command(),
                "user",
                "add",
                self.user,
                "--password-stdin",
                "--config",
                str(self.config_path),
            ],
            input=(self.password + "\n").encode(),
            capture_output=True,
            env=_env(),
            cwd=tmp,
            timeout=60,
            check=False,
        )
        if add.returncode != 0:
            raise PeerError(
                f"vmstor user add failed (rc={add.returncode}): "
                f"{add.stdout.decode(errors='replace')}{add.stderr.decode(errors='replace')}"
            )
        cmd = [*vmstor_command(), "serve", "--config", str(self.config_path)]
        if self.verbose:
            cmd.append("-v")
        with open(tmp / "vmstor.log", "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
                cwd=tmp,
                start_new_session=True,
            )
        proc = self.proc
        try:
            wait_for_port(
                self.host, port, self.start_timeout, lambda: proc.poll() is None, "vmstor serve"
            )
            if self.rdma_port is not None:
                wait_for_port(
                    self.host,
                    self.rdma_port,
                    self.start_timeout,
                    lambda: proc.poll() is None,
                    "vmstor serve (SMB Direct)",
                )
        except PeerError as e:
            raise PeerError(f"{e}\n{self.log_text()}") from None
        self.endpoint = Endpoint(
            kind="vmstor",
            host=self.host,
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

    def stop(self, check: bool = True) -> None:
        """SIGTERM, wait, remove the folder. With ``check``, raise PeerError (with the
        log) unless the server exited by itself with status 0 within ``stop_timeout``."""
        problem = None
        if self.proc is not None:
            proc = self.proc
            self.proc = None
            if proc.poll() is not None:
                problem = f"vmstor serve had already exited with status {proc.returncode}"
                self.exit_status = proc.returncode
            else:
                self.exit_status = stop_popen(proc, grace=self.stop_timeout)
                if self.exit_status is None:
                    problem = (
                        f"vmstor serve did not exit within {self.stop_timeout:.0f} s of SIGTERM"
                    )
                elif self.exit_status != 0:
                    problem = f"vmstor serve exited with status {self.exit_status} on SIGTERM"
        if problem is not None:
            self._log_copy = self.log_text()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if problem is not None and check:
            raise PeerError(f"{problem}\n{self._log_copy}")

    def log_text(self, tail: int = 80) -> str:
        """The last lines of the server's output (its log)."""
        if self.tmp is None:
            return self._log_copy or "(vmstor stopped; its folder was removed)"
        p = self.tmp / "vmstor.log"
        if not p.exists():
            return "(no vmstor log yet)"
        lines = p.read_text(errors="replace").splitlines()[-tail:]
        return f"--- {p}\n" + "\n".join(lines)


def main() -> None:
    import contextlib
    import signal
    import threading

    with VmstorServer(verbose="-v" in sys.argv) as ep:
        print(f"vmstor serving //{ep.host}/{ep.share} on port {ep.port}", flush=True)
        print(
            f"  smbclient {ep.unc()} -p {ep.port} -U '{ep.user}%{ep.password}' -m SMB3_11",
            flush=True,
        )
        print("Ctrl-C stops it.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
