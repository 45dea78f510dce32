"""A loopback stand-in for the PHONE's side of the adb protocol (test-only).

The real adb server (Debian's ``adb``) connects to it with ``adb connect 127.0.0.1:PORT``
exactly as to a phone's ``adbd`` over TCP; adbutils then talks to the server as usual. So
push, shell, pull and process clean-up run end to end through adbutils and the real server.

Transport (adb's protocol.txt): 24-byte little-endian headers ``command, arg0, arg1,
data_length, data_check (byte sum), magic (= command ^ 0xffffffff)`` + payload; the device
answers the server's ``CNXN`` with its own (no ``AUTH``: the server only authenticates when
the device asks), then serves streams: ``OPEN(remote, 0, "service\\0")`` -> ``OKAY(local, remote)``,
``WRTE``s each acknowledged by ``OKAY``, ``CLSE``. Services:

* ``shell:CMD`` (raw output, then close) and ``shell,v2[,args]:CMD`` (packets: 1-byte id
  1 stdout / 2 stderr / 3 exit + 4-byte length + data);
* ``sync:`` (SYNC.TXT): ``STAT``, ``LIST``, ``SEND`` (``DATA`` chunks then ``DONE``+mtime ->
  ``OKAY``), ``RECV`` (``DATA`` chunks then ``DONE``), ``QUIT``.

Commands run in a SANDBOX: a small POSIX-shell interpreter (quotes, ``\\``, ``;``, ``&&``,
``||``, ``&``, ``|``, redirections, ``$VAR``, ``$?``, ``$!``, ``$(...)`` and backticks,
also inside double quotes) over a fake filesystem rooted in a temporary folder, with a
fixed set of commands (getprop, cat, echo, ls, mkdir, rm, chmod, sha256sum, taskset,
timeout, kill, ps, sleep, sh -c, dumpsys, service, ...). Nothing runs on the host: every
command, executed or merely attempted, is appended to ``FakePhone.executed``, so a test can
see whether a name with ``;`` or ``$()`` made the "phone" run anything extra. Background
commands (``cmd &``) become entries of a fake process table (never run: competitors are
busy loops) until ``kill``\\ed. A file whose content starts with ``#!standin benchmark_model``
behaves like LiteRT's benchmark tool: flags checked, output in the tool's format.
"""
from __future__ import annotations

import contextlib
import hashlib
import posixpath
import random
import re
import socket
import stat as stat_mod
import struct
import threading
import time
from pathlib import Path
from typing import Any

A_SYNC, A_CNXN, A_AUTH, A_OPEN = 0x434E5953, 0x4E584E43, 0x48545541, 0x4E45504F
A_OKAY, A_CLSE, A_WRTE, A_STLS = 0x59414B4F, 0x45534C43, 0x45545257, 0x534C5453
VERSION = 0x01000001
MAXDATA = 256 * 1024
BENCH_MAGIC = b"#!standin benchmark_model"
DATA = Path(__file__).resolve().parent / "data"

DEFAULT_PROPS = {
    "ro.product.model": "Standin Phone 7",
    "ro.product.manufacturer": "StandinCo",
    "ro.product.device": "standin",
    "ro.product.name": "standin",
    "ro.soc.model": "SM8150",
    "ro.soc.manufacturer": "QTI",
    "ro.board.platform": "msmnile",
    "ro.hardware": "qcom",
    "ro.hardware.egl": "adreno",
    "ro.build.version.release": "12",
    "ro.build.version.sdk": "31",
    "ro.build.fingerprint": "standin/standin/standin:12/SQ1A/1:user/release-keys",
    "ro.product.cpu.abi": "arm64-v8a",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
}


class ShellSyntax(Exception):
    pass


# =========================================================================== the fake phone
class FakePhone:
    """State of the stand-in phone: fake filesystem, properties, processes, logs."""

    def __init__(self, root: Path, serial_name: str = "standin", props: dict[str, str] | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.props = dict(DEFAULT_PROPS, **(props or {}))
        self.executed: list[list[str]] = []        # every simple command (argv) run or attempted
        self.benchmarks: list[dict[str, Any]] = []  # benchmark_model invocations
        self.procs: dict[int, dict[str, Any]] = {}  # background processes
        self.next_pid = 4000
        self.apps = {"org.videolan.vlc"}
        self.gpu_unsupported = {"MEAN"}            # op types the fake GPU delegate does not take
        self.fail_gpu = False
        self.disconnect_on_benchmark: int | None = None  # 1-based invocation that "pulls the cable"
        self.accepting = True
        self.lock = threading.RLock()
        self._connections: list[socket.socket] = []
        self._populate()

    # -- filesystem -----------------------------------------------------------
    def host(self, device_path: str, cwd: str = "/") -> Path:
        p = posixpath.normpath(posixpath.join(cwd, device_path))
        rel = p.lstrip("/")
        out = (self.root / rel) if rel else self.root
        assert str(out.resolve()).startswith(str(self.root.resolve())), "sandbox escape"
        return out

    def write(self, device_path: str, text: str | bytes) -> None:
        p = self.host(device_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode() if isinstance(text, str) else text)

    def _populate(self) -> None:
        w = self.write
        w("/sys/devices/system/cpu/online", "0-7\n")
        w("/sys/devices/system/cpu/possible", "0-7\n")
        for pol, cpus, fmax, fmin in (("policy0", "0 1 2 3", 1785600, 300000), ("policy4", "4 5 6", 2419200, 710400),
                                      ("policy7", "7", 2841600, 825600)):
            b = f"/sys/devices/system/cpu/cpufreq/{pol}"
            w(f"{b}/related_cpus", cpus + "\n")
            w(f"{b}/cpuinfo_max_freq", f"{fmax}\n")
            w(f"{b}/cpuinfo_min_freq", f"{fmin}\n")
            w(f"{b}/scaling_cur_freq", f"{fmax // 2}\n")
            w(f"{b}/scaling_governor", "schedutil\n")
        for i, (typ, temp) in enumerate((("cpu-0-0-usr", 38200), ("gpuss-0-usr", 36100), ("battery", 31000))):
            w(f"/sys/class/thermal/thermal_zone{i}/type", typ + "\n")
            w(f"/sys/class/thermal/thermal_zone{i}/temp", f"{temp}\n")
        self.host("/sys/class/thermal/cooling_device0").mkdir(parents=True, exist_ok=True)
        k = "/sys/class/kgsl/kgsl-3d0"
        w(f"{k}/gpu_model", "Adreno640v2\n")
        w(f"{k}/gpuclk", "585000000\n")
        w(f"{k}/max_gpuclk", "585000000\n")
        w(f"{k}/gpu_busy_percentage", "3 %\n")
        w(f"{k}/temp", "36100\n")
        w("/sys/class/devfreq/soc:qcom,kgsl-busmon/cur_freq", "0\n")
        w("/vendor/bin/hw/android.hardware.neuralnetworks@1.3-service-qti", b"\x7fELF")
        self.host("/data/local/tmp").mkdir(parents=True, exist_ok=True)

    # -- processes ------------------------------------------------------------
    def spawn(self, argv: list[str], ppid: int = 1) -> int:
        with self.lock:
            self.next_pid += 7
            pid = self.next_pid
            self.procs[pid] = {"argv": argv, "ppid": ppid, "started": time.time()}
            return pid

    # -- the cable ------------------------------------------------------------
    def disconnect(self) -> None:
        """Pull the cable: drop every transport connection and refuse new ones."""
        self.accepting = False
        for s in list(self._connections):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


# =========================================================================== the shell
def _find_close(s: str, i: int, close: str = ")") -> int:
    """Index of the ``)`` closing a ``$(`` whose body starts at i (quotes respected)."""
    depth = 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            i = _quoted(s, i, "sq")[1]
            continue
        if c == '"':
            i += 1
            while i < len(s) and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
            i += 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntax("unterminated $(")


def _dollar(s: str, i: int) -> tuple[tuple, int]:
    if s.startswith("$((", i):
        raise ShellSyntax("arithmetic expansion not supported by the stand-in")
    if s.startswith("$(", i):
        j = _find_close(s, i + 2)
        return ("sub", s[i + 2:j]), j + 1
    if s.startswith("${", i):
        j = s.find("}", i)
        if j < 0:
            raise ShellSyntax("unterminated ${")
        return ("var", s[i + 2:j]), j + 1
    if i + 1 < len(s) and s[i + 1] in "?!$#@*0123456789":
        return ("var", s[i + 1]), i + 2
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", s[i + 1:])
    if m:
        return ("var", m.group(0)), i + 1 + m.end()
    return ("lit", "$"), i + 1


def _quoted(s: str, i: int, kind: str) -> tuple[tuple[str, str], int]:
    """The span quoted by ``s[i]`` (a ``'`` or a backquote) up to its closing twin: ((kind,
    the text inside), the index after it)."""
    j = s.find(s[i], i + 1)
    if j < 0:
        raise ShellSyntax(f"unterminated {s[i]}")
    return (kind, s[i + 1:j]), j + 1


def _lex_dq(s: str, i: int) -> tuple[list, int]:
    parts: list = []
    while i < len(s):
        c = s[i]
        if c == '"':
            return parts, i + 1
        if c == "\\" and i + 1 < len(s) and s[i + 1] in '$`"\\\n':
            parts.append(("lit", s[i + 1]))
            i += 2
            continue
        if c == "$":
            part, i = _dollar(s, i)
            parts.append(part)
            continue
        if c == "`":
            part, i = _quoted(s, i, "sub")
            parts.append(part)
            continue
        parts.append(("lit", c))
        i += 1
    raise ShellSyntax('unterminated "')


def lex(s: str) -> list[tuple]:
    toks: list[tuple] = []
    cur: list | None = None
    i = 0

    def flush():
        nonlocal cur
        if cur is not None:
            toks.append(("word", cur))
            cur = None

    while i < len(s):
        c = s[i]
        if c in " \t":
            flush()
            i += 1
            continue
        if c in "\n;":
            flush()
            toks.append(("op", ";"))
            i += 1
            continue
        if c == "#" and cur is None:
            j = s.find("\n", i)
            i = len(s) if j < 0 else j
            continue
        if c in "&|":  # & && | ||
            flush()
            op = c * 2 if s.startswith(c * 2, i) else c
            toks.append(("op", op))
            i += len(op)
            continue
        if c in "<>":
            fd = None
            if cur is not None and len(cur) == 1 and cur[0][0] == "lit" and cur[0][1].isdigit():
                fd = int(cur[0][1])
                cur = None
            else:
                flush()
            if s.startswith(">>", i):
                kind, i = ">>", i + 2
            elif s.startswith(">&", i):
                kind, i = ">&", i + 2
            elif c == "<":
                kind, i = "<", i + 1
            else:
                kind, i = ">", i + 1
            toks.append(("redir", fd if fd is not None else (0 if kind == "<" else 1), kind))
            continue
        if c in "()":
            raise ShellSyntax(f"syntax error: unexpected '{c}'")
        if cur is None:
            cur = []
        if c in "'`":
            part, i = _quoted(s, i, "sq" if c == "'" else "sub")
            cur.append(part)
        elif c == '"':
            parts, i = _lex_dq(s, i + 1)
            cur.append(("dq", parts))
        elif c == "\\":
            if i + 1 < len(s) and s[i + 1] == "\n":
                i += 2
            else:
                cur.append(("sq", s[i + 1:i + 2]))
                i += 2
        elif c == "$":
            part, i = _dollar(s, i)
            cur.append(part)
        else:
            cur.append(("lit", c))
            i += 1
    flush()
    return toks


def parse(toks: list[tuple]) -> list[tuple[list[dict], str]]:
    items: list[tuple[list[dict], str]] = []
    pipeline: list[dict] = []
    cmd: dict = {"words": [], "redirs": []}
    i = 0
    while i < len(toks):
        t = toks[i]
        if t[0] == "word":
            cmd["words"].append(t[1])
        elif t[0] == "redir":
            if i + 1 >= len(toks) or toks[i + 1][0] != "word":
                raise ShellSyntax("redirection without a target")
            cmd["redirs"].append((t[1], t[2], toks[i + 1][1]))
            i += 1
        else:
            if cmd["words"] or cmd["redirs"]:
                pipeline.append(cmd)
            cmd = {"words": [], "redirs": []}
            if t[1] != "|":
                if pipeline:
                    items.append((pipeline, t[1]))
                pipeline = []
        i += 1
    if cmd["words"] or cmd["redirs"]:
        pipeline.append(cmd)
    if pipeline:
        items.append((pipeline, ";"))
    return items


class Io:
    def __init__(self, stdin: bytes = b""):
        self.stdin = stdin
        self.out = bytearray()
        self.err = bytearray()

    def o(self, text: str | bytes) -> None:
        self.out += text.encode() if isinstance(text, str) else text

    def e(self, text: str | bytes) -> None:
        self.err += text.encode() if isinstance(text, str) else text


class FakeShell:
    """One ``sh`` session on the fake phone."""

    def __init__(self, phone: FakePhone, argv0: str = "sh", args: list[str] | None = None, ppid: int = 1):
        self.phone = phone
        self.vars: dict[str, str] = {"?": "0", "!": "", "$": str(2000 + random.randint(0, 999)), "0": argv0}
        for k, a in enumerate(args or [], start=1):
            self.vars[str(k)] = a
        self.cwd = "/"
        self.ppid = ppid

    # -- entry point --------------------------------------------------------
    def run(self, script: str, stdin: bytes = b"") -> tuple[bytes, bytes, int]:
        io = Io(stdin)
        try:
            items = parse(lex(script))
        except ShellSyntax as e:
            return b"", f"sh: {e}\n".encode(), 2
        rc = 0
        prev = ";"
        for pipeline, op in items:
            if (prev == "&&" and rc != 0) or (prev == "||" and rc == 0):
                prev = op
                continue
            if op == "&":
                argvs = [self._expand_all(c["words"], io) for c in pipeline]
                for argv in argvs:
                    self.phone.executed.append(["&"] + argv)
                pid = self.phone.spawn([a for argv in argvs for a in argv], ppid=self.ppid)
                self.vars["!"] = str(pid)
                rc = 0
            else:
                rc = self._pipeline(pipeline, io)
            self.vars["?"] = str(rc)
            prev = op
        return bytes(io.out), bytes(io.err), rc

    # -- expansion ------------------------------------------------------------
    def _value(self, part: tuple, io: Io) -> str:
        kind, val = part
        if kind == "var":
            return self.vars.get(val, "")
        sub = FakeShell(self.phone, self.vars["0"], ppid=self.ppid)
        sub.vars.update({k: v for k, v in self.vars.items() if not k.isdigit()})
        sub.cwd = self.cwd
        out, err, rc = sub.run(val)
        io.e(err)
        return out.decode(errors="replace").rstrip("\n")

    def _expand(self, word: list, io: Io) -> list[str]:
        fields: list[str] = []
        cur: str | None = None
        for part in word:
            kind = part[0]
            if kind in ("lit", "sq"):
                cur = (cur or "") + part[1]
            elif kind == "dq":
                text = "".join(p[1] if p[0] == "lit" else self._value(p, io) for p in part[1])
                cur = (cur or "") + text
            else:  # unquoted $(...), `...`, $VAR: field splitting
                pieces = self._value(part, io).split()
                if not pieces:
                    continue
                cur = (cur or "") + pieces[0]
                for p in pieces[1:]:
                    fields.append(cur)
                    cur = p
        if cur is not None:
            fields.append(cur)
        return fields

    def _expand_all(self, words: list, io: Io) -> list[str]:
        argv: list[str] = []
        for w in words:
            argv += self._expand(w, io)
        return argv

    # -- execution ------------------------------------------------------------
    def _pipeline(self, pipeline: list[dict], io: Io) -> int:
        data = io.stdin
        rc = 0
        for k, cmd in enumerate(pipeline):
            last = k == len(pipeline) - 1
            sub = Io(data)
            rc = self._simple(cmd, sub)
            io.e(sub.err)
            if last:
                io.o(sub.out)
            data = bytes(sub.out)
        return rc

    def _simple(self, cmd: dict, io: Io) -> int:
        argv = self._expand_all(cmd["words"], io)
        # assignments only: NAME=value ...
        if argv and all(re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", a) for a in argv):
            for a in argv:
                k, v = a.split("=", 1)
                self.vars[k] = v
            return 0
        inner = Io(io.stdin)
        out_target, err_target = "out", "err"
        files: dict[str, tuple[Path | None, bool]] = {}
        for fd, kind, word in cmd["redirs"]:
            target = " ".join(self._expand(word, io))
            if kind == ">&":
                if fd == 2 and target == "1":
                    err_target = out_target
                elif fd == 1 and target == "2":
                    out_target = err_target
                continue
            if kind == "<":
                inner.stdin = b"" if target == "/dev/null" else self.phone.host(target, self.cwd).read_bytes() \
                    if self.phone.host(target, self.cwd).is_file() else b""
                continue
            dest = None if target == "/dev/null" else self.phone.host(target, self.cwd)
            key = f"file:{target}"
            files[key] = (dest, kind == ">>")
            if fd == 1:
                out_target = key
            elif fd == 2:
                err_target = key
        if not argv:
            return 0
        self.phone.executed.append(list(argv))
        rc = self._dispatch(argv, inner)
        streams = {"out": bytes(inner.out), "err": bytes(inner.err)}
        for name, target in (("out", out_target), ("err", err_target)):
            data = streams[name]
            if target == "out":
                io.o(data)
            elif target == "err":
                io.e(data)
            else:
                dest, append = files[target]
                if dest is not None:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with open(dest, "ab" if append or (name == "err" and out_target == target) else "wb") as f:
                        f.write(data)
        return rc

    # -- commands -------------------------------------------------------------
    KNOWN = {"getprop", "cat", "echo", "ls", "mkdir", "rm", "chmod", "sha256sum", "uname", "date", "taskset", "timeout",
             "kill", "ps", "sleep", "sh", "true", "false", "test", "[", "cd", "pwd", "dumpsys", "service", "cmd",
             "nproc", "command", "dd"}

    def _dispatch(self, argv: list[str], io: Io) -> int:
        name, args = argv[0], argv[1:]
        if "/" in name:
            return self._exec_file(name, args, io)
        fn = getattr(self, "c_" + {"[": "test"}.get(name, name), None)
        if name not in self.KNOWN or fn is None:
            io.e(f"sh: {name}: not found\n")
            return 127
        return fn(args, io)

    def _exec_file(self, path: str, args: list[str], io: Io) -> int:
        p = self.phone.host(path, self.cwd)
        if not p.is_file():
            io.e(f"sh: {path}: not found\n")
            return 127
        if not p.stat().st_mode & stat_mod.S_IXUSR:
            io.e(f"sh: {path}: can't execute: Permission denied\n")
            return 126
        if p.read_bytes().startswith(BENCH_MAGIC):
            return FakeBenchmark(self.phone, self).run(path, args, io)
        io.e(f"sh: {path}: can't execute: Exec format error\n")
        return 126

    def c_true(self, a, io):
        return 0

    def c_false(self, a, io):
        return 1

    def c_echo(self, a, io):
        nl = True
        if a and a[0] == "-n":
            nl, a = False, a[1:]
        io.o(" ".join(a) + ("\n" if nl else ""))
        return 0

    def c_getprop(self, a, io):
        if a:
            io.o(self.phone.props.get(a[0], "") + "\n")
        else:
            io.o("".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.phone.props.items())))
        return 0

    def _proc_file(self, path: str) -> bytes | None:
        m = re.fullmatch(r"/proc/(\d+)/cmdline", posixpath.normpath(posixpath.join(self.cwd, path)))
        if m:
            pr = self.phone.procs.get(int(m.group(1)))
            return None if pr is None else ("\0".join(pr["argv"]) + "\0").encode()
        return None

    def c_cat(self, a, io):
        if not a:
            io.o(io.stdin)
            return 0
        rc = 0
        for f in a:
            special = self._proc_file(f)
            p = self.phone.host(f, self.cwd)
            if special is not None:
                io.o(special)
            elif p.is_file():
                io.o(p.read_bytes())
            else:
                io.e(f"cat: {f}: No such file or directory\n")
                rc = 1
        return rc

    def c_ls(self, a, io):
        paths = [x for x in a if not x.startswith("-")] or [self.cwd]
        rc = 0
        for f in paths:
            p = self.phone.host(f, self.cwd)
            if p.is_dir():
                io.o("".join(n + "\n" for n in sorted(x.name for x in p.iterdir())))
            elif p.exists():
                io.o(f + "\n")
            else:
                io.e(f"ls: {f}: No such file or directory\n")
                rc = 1
        return rc

    def c_mkdir(self, a, io):
        parents = "-p" in a
        for f in (x for x in a if not x.startswith("-")):
            p = self.phone.host(f, self.cwd)
            try:
                p.mkdir(parents=parents, exist_ok=parents)
            except OSError as e:
                io.e(f"mkdir: {f}: {e.strerror}\n")
                return 1
        return 0

    def c_rm(self, a, io):
        force = any(x.startswith("-") and "f" in x for x in a)
        rc = 0
        for f in (x for x in a if not x.startswith("-")):
            p = self.phone.host(f, self.cwd)
            if p.is_file():
                p.unlink()
            elif p.is_dir() and any(x.startswith("-") and "r" in x for x in a):
                import shutil

                shutil.rmtree(p)
            elif not force:
                io.e(f"rm: {f}: No such file or directory\n")
                rc = 1
        return rc

    def c_chmod(self, a, io):
        if len(a) < 2 or not re.fullmatch(r"[0-7]{3,4}", a[0]):
            io.e("chmod: bad mode\n")
            return 1
        for f in a[1:]:
            p = self.phone.host(f, self.cwd)
            if not p.exists():
                io.e(f"chmod: {f}: No such file or directory\n")
                return 1
            p.chmod(int(a[0], 8))
        return 0

    def c_sha256sum(self, a, io):
        rc = 0
        for f in a:
            p = self.phone.host(f, self.cwd)
            if p.is_file():
                io.o(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {f}\n")
            else:
                io.e(f"sha256sum: {f}: No such file or directory\n")
                rc = 1
        return rc

    def c_uname(self, a, io):
        io.o("4.14.190-standin-perf+\n" if "-r" in a else "Linux localhost 4.14.190-standin-perf+ aarch64\n")
        return 0

    def c_date(self, a, io):
        io.o(f"{int(time.time())}\n" if a == ["+%s"] else time.strftime("%a %b %d %H:%M:%S UTC %Y\n", time.gmtime()))
        return 0

    def c_nproc(self, a, io):
        io.o("8\n")
        return 0

    def c_pwd(self, a, io):
        io.o(self.cwd + "\n")
        return 0

    def c_cd(self, a, io):
        target = posixpath.normpath(posixpath.join(self.cwd, a[0] if a else "/"))
        if not self.phone.host(target).is_dir():
            io.e(f"sh: cd: {a[0]}: No such file or directory\n")
            return 2
        self.cwd = target
        return 0

    def c_test(self, a, io):
        a = [x for x in a if x != "]"]
        if len(a) == 2 and a[0] in ("-e", "-f", "-d", "-x"):
            p = self.phone.host(a[1], self.cwd)
            ok = {"-e": p.exists(), "-f": p.is_file(), "-d": p.is_dir(),
                  "-x": p.is_file() and bool(p.stat().st_mode & stat_mod.S_IXUSR)}[a[0]]
            return 0 if ok else 1
        if len(a) == 3 and a[1] in ("=", "!="):
            return 0 if (a[0] == a[2]) == (a[1] == "=") else 1
        return 1 if not a or a == [""] else 0

    def c_command(self, a, io):
        if a[:1] != ["-v"]:
            return 1
        rc = 1
        for name in a[1:]:
            if name in self.KNOWN:
                io.o(f"/system/bin/{name}\n")
                rc = 0
        return rc

    def c_sleep(self, a, io):
        time.sleep(min(float(a[0]) if a else 0.0, 60.0))
        return 0

    def c_dd(self, a, io):
        return 0

    def c_sh(self, a, io):
        if len(a) >= 2 and a[0] == "-c":
            child = FakeShell(self.phone, a[2] if len(a) > 2 else "sh", a[3:], ppid=self.ppid)
            child.cwd = self.cwd
            out, err, rc = child.run(a[1], io.stdin)
            io.o(out)
            io.e(err)
            return rc
        io.e("sh: interactive shells are not supported by the stand-in\n")
        return 2

    def c_taskset(self, a, io):
        if len(a) < 2 or not re.fullmatch(r"(0x)?[0-9a-fA-F]+", a[0]):
            io.e("taskset: bad mask\n")
            return 1
        return self._dispatch(a[1:], io)

    def c_timeout(self, a, io):
        i = 0
        while i < len(a) and a[i].startswith("-"):
            i += 2 if a[i] in ("-k", "-s") else 1
        if i + 1 >= len(a):
            io.e("timeout: missing command\n")
            return 125
        limit = float(a[i].rstrip("s"))
        rest = a[i + 1:]
        if rest[0] == "sleep" and len(rest) > 1 and float(rest[1]) > limit:
            time.sleep(min(limit, 60.0))
            return 124
        return self._dispatch(rest, io)

    def c_kill(self, a, io):
        probe = False
        rest = []
        i = 0
        while i < len(a):
            x = a[i]
            if x == "-0":
                probe = True
            elif x == "-s":
                i += 1
            elif x == "--" or re.fullmatch(r"-(\d+|[A-Z]+)", x):
                pass
            else:
                rest.append(x)
            i += 1
        rc = 0
        for x in rest:
            if not x.isdigit():
                io.e(f"kill: {x}: bad pid\n")
                rc = 1
                continue
            with self.phone.lock:
                if int(x) not in self.phone.procs:
                    io.e(f"kill: {x}: No such process\n")
                    rc = 1
                elif not probe:
                    del self.phone.procs[int(x)]
        return rc

    def c_ps(self, a, io):
        io.o("  PID  PPID\n    1     0\n  512     1\n")
        with self.phone.lock:
            for pid, pr in sorted(self.phone.procs.items()):
                io.o(f"{pid:5d} {pr['ppid']:5d}\n")
        return 0

    def c_dumpsys(self, a, io):
        if not a:
            return 0
        if a[0] == "gfxinfo":
            pkg = a[1] if len(a) > 1 else ""
            if pkg not in self.phone.apps:
                io.o(f"No process found for: {pkg}\n")
                return 0
            if "reset" in a:
                return 0
            io.o((DATA / "gfxinfo_framestats.txt").read_text().replace("org.videolan.vlc", pkg))
            return 0
        if a[0] == "SurfaceFlinger":
            io.o("Build configuration: [sf PRESENT_TIME_OFFSET=0]\n\nDisplay 0 (HWC display 0): port=0\n"
                 "GLES: Qualcomm, Adreno (TM) 640, OpenGL ES 3.2 V@415.0 (GIT@2fbb9b4, I3fa7d4c0b8)\n")
            return 0
        if a[0] == "battery":
            io.o("Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  Wireless powered: false\n"
                 "  status: 2\n  health: 2\n  present: true\n  level: 87\n  scale: 100\n  voltage: 4211\n"
                 "  temperature: 312\n  technology: Li-ion\n")
            return 0
        io.o(f"Can't find service: {a[0]}\n")
        return 0

    def c_service(self, a, io):
        if a[:1] == ["list"]:
            io.o("Found 3 services:\n0\tactivity: [android.app.IActivityManager]\n"
                 "1\tandroid.hardware.neuralnetworks.IDevice/qti-dsp: [android.hardware.neuralnetworks.IDevice]\n"
                 "2\tandroid.hardware.neuralnetworks.IDevice/nnapi-reference: [android.hardware.neuralnetworks.IDevice]\n")
            return 0
        return 1

    def c_cmd(self, a, io):
        return 0


# =========================================================================== fake benchmark_model
class FakeBenchmark:
    """Prints what LiteRT's benchmark_model prints (format of its sources), with numbers
    from a seeded generator: a stand-in, not a measurement."""

    def __init__(self, phone: FakePhone, shell: FakeShell):
        self.phone = phone
        self.shell = shell

    def run(self, path: str, args: list[str], io: Io) -> int:
        help_text = (DATA / "benchmark_help.txt").read_text()
        known = set(re.findall(r"--([a-z_0-9]+)=", help_text))
        if "--help" in args:
            io.o(help_text)
            return 0
        flags: dict[str, str] = {}
        for a in args:
            m = re.fullmatch(r"--([a-z_0-9]+)=(.*)", a, re.S)
            if not m or m.group(1) not in known:
                io.e(f"Unconsumed cmdline flags: {a}\n")
                return 1
            flags[m.group(1)] = m.group(2)
        graph = flags.get("graph", "")
        with self.phone.lock:
            self.phone.benchmarks.append({"graph": graph, "flags": flags, "cwd": self.shell.cwd})
            n_inv = len(self.phone.benchmarks)
        if self.phone.disconnect_on_benchmark == n_inv:
            time.sleep(0.2)
            self.phone.disconnect()
            time.sleep(0.5)
            return 137
        gp = self.phone.host(graph, self.shell.cwd)
        log = ["INFO: STARTING!", "INFO: Log parameter values verbosely: [0]",
               f"INFO: Min num runs: [{flags.get('num_runs', 50)}]", f"INFO: Num threads: [{flags.get('num_threads', -1)}]",
               f"INFO: Graph: [{graph}]"]
        if not gp.is_file():
            io.e("\n".join(log + [f"ERROR: Could not open '{graph}'.", f"ERROR: Failed to mmap model {graph}",
                                  "ERROR: Benchmarking failed."]) + "\n")
            return 1
        try:
            from study.engines.tflite_graph import graph_ops

            ops = graph_ops(gp)
        except Exception:  # noqa: BLE001 - not a model: the real tool fails too
            io.e("\n".join(log + ["ERROR: The model is not a valid Flatbuffer buffer", "ERROR: Benchmarking failed."]) + "\n")
            return 1
        gpu = flags.get("use_gpu") == "true"
        nnapi = flags.get("use_nnapi") == "true"
        xnn = flags.get("use_xnnpack", "true") != "false"
        if gpu and self.phone.fail_gpu:
            io.e((DATA / "benchmark_gpu_failed.txt").read_text())
            return 1
        n, w = int(flags.get("num_runs", 50)), int(flags.get("warmup_runs", 1))
        rng = random.Random(hash((graph, n, w, n_inv)) & 0xFFFF)
        total = len(ops)
        if gpu:
            deleg, name, proc_ms = "TfLiteGpuDelegateV2", "GPU", 3.0
            fallback = [o.index for o in ops if o.op_type in self.phone.gpu_unsupported]
            log += ["INFO: Use gpu: [1]", "INFO: Created TensorFlow Lite delegate for GPU."]
            if fallback:
                log += ["ERROR: Following operations are not supported by GPU delegate:"]
                log += [f"{t}: Operation is not supported." for t in sorted({ops[i].op_type for i in fallback})]
                log += [f"{total - len(fallback)} operations will run on the GPU, and the remaining {len(fallback)} "
                        "operations will run on the CPU."]
        elif nnapi:
            deleg, name, proc_ms, fallback = "TfLiteNnapiDelegate", "NNAPI", 2.0, []
            log += ["INFO: Use NNAPI: [1]", "INFO: Created TensorFlow Lite delegate for NNAPI."]
        else:
            deleg, name, proc_ms, fallback = "TfLiteXNNPackDelegate", "XNNPACK", 5.0, []
            log += [f"INFO: Use xnnpack: [{int(xnn)}]"]
            if xnn:
                log += ["INFO: Created TensorFlow Lite XNNPACK delegate for CPU."]
        # partitions: maximal runs of delegated node indices
        delegated = [o.index for o in ops if o.index not in fallback]
        parts: list[list[int]] = []
        for i in delegated:
            if parts and parts[-1][-1] == i - 1:
                parts[-1].append(i)
            else:
                parts.append([i])
        applied = gpu or nnapi or xnn
        if applied and delegated:
            log += [f"INFO: Replacing {len(delegated)} out of {total} node(s) with delegate ({deleg}) node, yielding "
                    f"{len(parts)} partitions for subgraph 0 (main)."]
        if gpu:
            log += ["INFO: Initialized OpenCL-based API."]
        log += ["INFO: The input model file size (MB): %.5f" % (gp.stat().st_size / 1e6),
                "INFO: Initialized session in %.3fms." % (rng.uniform(20, 60) * (30 if gpu else 1))]

        def stat(k: int, base_us: float) -> str:
            xs = [base_us * rng.uniform(0.95, 1.15) for _ in range(max(k, 1))]
            mean = sum(xs) / len(xs)
            sd = (sum((x - mean) ** 2 for x in xs) / len(xs)) ** 0.5
            srt = sorted(xs)
            if k <= 1:
                return f"count={k} curr={int(xs[0])}"
            return (f"count={k} first={int(xs[0])} curr={int(xs[-1])} min={int(srt[0])} max={int(srt[-1])} "
                    f"avg={mean:.1f} std={int(sd)} p5={int(srt[len(srt) * 5 // 100])} median={int(srt[len(srt) // 2])} "
                    f"p95={int(srt[len(srt) * 95 // 100])}")

        base = proc_ms * 1000 * (1 + 0.4 * len(self.phone.procs))
        log += [f"INFO: Running benchmark for at least {w} iterations and at least 0 seconds but terminate if exceeding "
                "150 seconds.", "INFO: " + stat(w, base * 1.3), "",
                f"INFO: Running benchmark for at least {n} iterations and at least 0 seconds but terminate if exceeding "
                "150 seconds.", "INFO: " + stat(n, base), "",
                f"INFO: Inference timings in us: Init: 41214, First inference: {int(base * 1.5)}, Warmup (avg): "
                f"{base * 1.3:.1f}, Inference (avg): {base:.1f}"]
        if flags.get("enable_op_profiling") == "true":
            log += ["INFO: Operator-wise Profiling Info for Regular Benchmark Runs:", self._table(ops, fallback, parts,
                                                                                                 deleg, applied, n)]
        io.e("\n".join(log) + "\n")
        return 0

    @staticmethod
    def _table(ops, fallback, parts, deleg, applied, n) -> str:
        def f(v, wd):
            return "\t" + (f"{v:.3f}" if isinstance(v, float) else str(v)).rjust(wd)

        head = "=" * 30 + " Run Order " + "=" * 30 + "\n" + f("[node type]", 24) + f("[first]", 9) + f("[avg ms]", 9) \
            + f("[%]", 8) + f("[cdf%]", 8) + f("[mem KB]", 10) + f("[times called]", 9) + "\t[Name]\n"
        rows = []
        total = len(ops)
        if applied:
            for k, part in enumerate(parts):
                rows.append((deleg, 0.5 * len(part), f"[t{part[-1]}]:{total + k}"))
        for i in fallback if applied else [o.index for o in ops]:
            rows.append((ops[i].op_type, 0.2, f"[t{i}]:{i}"))
        tot = sum(r[1] for r in rows) or 1.0
        cdf = 0.0
        body = ""
        for t, ms, name in rows:
            pct = 100 * ms / tot
            cdf += pct
            body += f(t, 24) + f(ms, 9) + f(ms, 9) + f(f"{pct:.3f}", 7) + "%" + f(f"{cdf:.3f}", 7) + "%" + f(0.0, 10) \
                + f(1, 9) + "\t" + name + "\n"
        return head + body + f"\nTimings (microseconds): count={n} first=1000 curr=1000 min=990 max=1010 avg=1000 std=5\n" \
            "Memory (bytes): count=0\n" + f"{len(rows)} nodes observed\n"


# =========================================================================== the transport
def _msg(cmd: int, a0: int, a1: int, data: bytes = b"") -> bytes:
    return struct.pack("<6I", cmd, a0, a1, len(data), sum(data) & 0xFFFFFFFF, cmd ^ 0xFFFFFFFF) + data


class _Stream:
    def __init__(self, conn: "_Connection", local: int, remote: int):
        self.conn = conn
        self.local = local
        self.remote = remote
        self.ready = threading.Event()
        self.ready.set()          # OPEN implies READY: the first WRTE may go at once
        self.closed = threading.Event()
        self.inbox = bytearray()
        self.cv = threading.Condition()

    def write(self, data: bytes) -> bool:
        for i in range(0, len(data), self.conn.maxdata):
            while not self.ready.wait(0.1):
                if self.closed.is_set() or self.conn.dead:
                    return False
            if self.closed.is_set():
                return False
            self.ready.clear()
            self.conn.send(A_WRTE, self.local, self.remote, data[i:i + self.conn.maxdata])
        return True

    def read_exact(self, n: int, timeout: float = 30.0) -> bytes | None:
        deadline = time.monotonic() + timeout
        with self.cv:
            while len(self.inbox) < n:
                if self.closed.is_set() or time.monotonic() > deadline:
                    return None
                self.cv.wait(0.1)
            out = bytes(self.inbox[:n])
            del self.inbox[:n]
            return out

    def read_header(self) -> tuple[bytes, int] | None:
        """A sync-protocol header: (its 4-byte id, the little-endian uint32 after it); None
        when the stream ends first."""
        head = self.read_exact(8)
        return None if head is None else (head[:4], struct.unpack("<I", head[4:])[0])

    def feed(self, data: bytes) -> None:
        with self.cv:
            self.inbox += data
            self.cv.notify_all()

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.conn.send(A_CLSE, self.local, self.remote)
        with self.cv:
            self.cv.notify_all()


class _Connection:
    def __init__(self, phone: FakePhone, sock: socket.socket, banner: str):
        self.phone = phone
        self.sock = sock
        self.banner = banner
        self.maxdata = 4096
        self.wlock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.dead = False

    def send(self, cmd: int, a0: int, a1: int, data: bytes = b"") -> None:
        with self.wlock:
            try:
                self.sock.sendall(_msg(cmd, a0, a1, data))
            except OSError:
                self.dead = True

    def _recv(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def serve(self) -> None:
        try:
            while True:
                head = self._recv(24)
                if head is None:
                    break
                cmd, a0, a1, n, _check, magic = struct.unpack("<6I", head)
                if magic != cmd ^ 0xFFFFFFFF:
                    break  # corrupt: protocol.txt says close
                data = self._recv(n) if n else b""
                if data is None:
                    break
                self._handle(cmd, a0, a1, data)
        finally:
            self.dead = True
            for s in list(self.streams.values()):
                s.closed.set()
            try:
                self.sock.close()
            except OSError:
                pass

    def _handle(self, cmd: int, a0: int, a1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            self.maxdata = max(4096, min(a1, MAXDATA))
            self.send(A_CNXN, VERSION, MAXDATA, self.banner.encode())
        elif cmd == A_OPEN:
            service = data.rstrip(b"\0").decode(errors="replace")
            local = self.next_id
            self.next_id += 1
            s = _Stream(self, local, a0)
            handler = self._service(service)
            if handler is None:
                self.send(A_CLSE, 0, a0)
                return
            self.streams[local] = s
            self.send(A_OKAY, local, a0)
            threading.Thread(target=self._run, args=(handler, s), daemon=True).start()
        elif cmd == A_OKAY:
            s = self.streams.get(a1)
            if s is not None:
                s.remote = a0
                s.ready.set()
        elif cmd == A_WRTE:
            s = self.streams.get(a1)
            if s is not None:
                self.send(A_OKAY, a1, a0)
                s.feed(data)
        elif cmd == A_CLSE:
            s = self.streams.pop(a1, None)
            if s is not None:
                s.closed.set()
                with s.cv:
                    s.cv.notify_all()
        # A_AUTH / A_STLS / A_SYNC from a host: not expected; ignored

    def _run(self, handler, s: _Stream) -> None:
        try:
            handler(s)
        finally:
            s.close()
            self.streams.pop(s.local, None)

    def _service(self, service: str):
        m = re.match(r"^(shell|exec)(,[^:]*)?:(.*)$", service, re.S)
        if m:
            v2 = m.group(1) == "shell" and "v2" in (m.group(2) or "")
            command = m.group(3)
            return lambda s: self._shell(s, command, v2)
        if service == "sync:":
            return self._sync
        return None

    def _shell(self, s: _Stream, command: str, v2: bool) -> None:
        if not command.strip():
            if v2:
                s.write(bytes([2]) + struct.pack("<I", 40) + b"interactive shell not supported by stand-in"[:40])
                s.write(bytes([3]) + struct.pack("<I", 1) + bytes([1]))
            return
        out, err, rc = FakeShell(self.phone).run(command)
        if v2:
            if out:
                s.write(bytes([1]) + struct.pack("<I", len(out)) + out)
            if err:
                s.write(bytes([2]) + struct.pack("<I", len(err)) + err)
            s.write(bytes([3]) + struct.pack("<I", 1) + bytes([rc & 0xFF]))
        else:
            s.write(out + err)

    def _sync(self, s: _Stream) -> None:
        while (head := s.read_header()) is not None:  # until the stream ends
            cmd, n = head
            if cmd == b"QUIT":
                return
            arg = s.read_exact(n) if n else b""
            if arg is None:
                return
            path = arg.decode(errors="replace")
            self.phone.executed.append(["<sync>", cmd.decode(errors="replace"), path])
            if cmd == b"STAT":
                p = self.phone.host(path)
                if p.exists():
                    st = p.stat()
                    s.write(b"STAT" + struct.pack("<III", st.st_mode, st.st_size, int(st.st_mtime)))
                else:
                    s.write(b"STAT" + struct.pack("<III", 0, 0, 0))
            elif cmd == b"LIST":
                p = self.phone.host(path)
                if p.is_dir():
                    for c in sorted(p.iterdir()):
                        st = c.stat()
                        name = c.name.encode()
                        s.write(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size, int(st.st_mtime), len(name)) + name)
                s.write(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            elif cmd == b"SEND":
                dest, _, mode = path.rpartition(",")
                buf = bytearray()
                while True:
                    h = s.read_header()
                    if h is None:
                        return
                    kind, size = h
                    if kind == b"DATA":
                        chunk = s.read_exact(size)
                        if chunk is None:
                            return
                        buf += chunk
                    elif kind == b"DONE":
                        break
                    else:
                        return
                p = self.phone.host(dest)
                if not p.parent.is_dir():
                    msg = f"secure_mkdirs failed: {posixpath.dirname(dest)}: No such file or directory".encode()
                    s.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                p.write_bytes(bytes(buf))
                if mode.isdigit():
                    p.chmod(int(mode) & 0o777)
                s.write(b"OKAY" + struct.pack("<I", 0))
            elif cmd == b"RECV":
                p = self.phone.host(path)
                if not p.is_file():
                    msg = b"No such file or directory"
                    s.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                    continue
                data = p.read_bytes()
                for i in range(0, len(data), 64 * 1024):
                    chunk = data[i:i + 64 * 1024]
                    s.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
                s.write(b"DONE" + struct.pack("<I", 0))
            else:
                msg = f"unknown sync request {cmd!r}".encode()
                s.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                return


class AdbStandin:
    """Listens on 127.0.0.1:PORT for the adb server (``adb connect 127.0.0.1:PORT``)."""

    def __init__(self, phone: FakePhone, host: str = "127.0.0.1"):
        self.phone = phone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.host, self.port = self.sock.getsockname()
        self.serial = f"{self.host}:{self.port}"
        p = phone.props
        self.banner = (f"device::ro.product.name={p['ro.product.name']};ro.product.model={p['ro.product.model']};"
                       f"ro.product.device={p['ro.product.device']};features=shell_v2,cmd")
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> "AdbStandin":
        self.thread.start()
        return self

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self.phone.accepting:
                conn.close()
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.phone._connections.append(conn)
            threading.Thread(target=_Connection(self.phone, conn, self.banner).serve, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.phone.disconnect()
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(timeout=2)


# =========================================================================== helpers for tests
def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class AdbServer:
    """The real adb server (Debian's ``adb``) on a free port, in the foreground
    (``adb -P PORT nodaemon server``) so the test owns its pid; its keys go to a temporary HOME."""

    def __init__(self, home: Path):
        import os
        import shutil
        import subprocess

        self.exe = shutil.which("adb")
        if self.exe is None:
            raise RuntimeError("adb not installed (Debian package `adb`; scripts/setup.sh --test installs it)")
        self.port = free_port()
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, HOME=str(self.home), ANDROID_ADB_SERVER_PORT=str(self.port))
        self.env.pop("ANDROID_SERIAL", None)
        self.log = open(self.home / "adb-server.log", "wb")
        self.proc = subprocess.Popen([self.exe, "-P", str(self.port), "nodaemon", "server"], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"adb server did not start: {(self.home / 'adb-server.log').read_text()[-500:]}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def adb(self, *args: str, timeout: float = 20):
        import subprocess

        return subprocess.run([self.exe, "-P", str(self.port), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def connect(self, standin: AdbStandin, timeout: float = 15.0) -> str:
        """``adb connect`` the stand-in and wait until the server lists it as ``device``."""
        r = self.adb("connect", standin.serial)
        if "connected" not in r.stdout:
            raise RuntimeError(f"adb connect failed: {r.stdout} {r.stderr}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.adb("devices").stdout
            if re.search(rf"^{re.escape(standin.serial)}\s+device$", out, re.M):
                return standin.serial
            time.sleep(0.1)
        raise RuntimeError(f"{standin.serial} never came online: {out}")

    def stop(self) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def fake_benchmark_binary(path: Path) -> Path:
    """A file the stand-in runs as benchmark_model (the host never executes it)."""
    path.write_bytes(BENCH_MAGIC + b"\n# test stand-in for LiteRT's benchmark_model\n")
    return path


@contextlib.contextmanager
def standin_phone(tmp: Path):
    """The real adb server with a fake phone behind the loopback stand-in and a fake
    benchmark binary: yields (fake phone, device(**settings) -> an AdbDevice on it); ends
    both on exit. Skips the test where Debian's adb is not installed."""
    import shutil

    import pytest

    from study.devices import adb as A

    if shutil.which("adb") is None:
        pytest.skip("needs Debian's adb package")
    server = AdbServer(tmp / "adbhome")
    fake = FakePhone(tmp / "root")
    st = AdbStandin(fake).start()
    try:
        serial = server.connect(st)
        binary = fake_benchmark_binary(tmp / "benchmark_model")
        base = dict(server=server.address, benchmark_binary=str(binary), benchmark_sha256=A.file_sha256(binary))

        def device(**settings):
            return A.AdbDevice(f"adb:{serial}", serial, A.AdbSettings(**base, **settings))

        yield fake, device
    finally:
        st.close()
        server.stop()
