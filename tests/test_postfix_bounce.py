"""A real MTA in the loop: Debian's Postfix relays a welcome mail to an unknown user, and its own DSN comes back
through the pipe transport that the README's bounce section sets up, to `mailer bounces process`."""
from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import smtplib
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer.bounces import verp
from mailer.extensions import db
from mailer.models import Delivery, MailEvent, Status, Subscriber, utcnow
from mailer.outbox import ledger
from mailer.people import welcome
from tests.conftest import IN_CI, ROOT, Worker, build_stack_env, fresh_database, make_app, stack_overrides
from tests.smtp_sink import _free_port

pytestmark = pytest.mark.integration

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
TEST_DOMAIN = "dest.test"  # delivered on the Postfix host by local(8), which knows no user there
BOUNCE_DOMAIN = "bounces.mailer.test"
PIPE_USER = "nobody"  # pipe(8) runs commands neither as root nor as Postfix's own user
MAILER = Path(sys.executable).parent / "mailer"  # the console script of the venv running the tests

# The test's own part of main.cf (the README's lines follow it): directories of its own, loopback only, and no
# route off the machine, so that a wrong route bounces instead of looking up DNS.
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = relay.mailer.test
mydestination = {test_domain}
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
default_transport = error:this test sends nothing off the machine
relay_transport = error:this test sends nothing off the machine
"""
# The services of a small Postfix (the README's pipe follows them) and two smtpd listeners. The first is the relay
# our worker sends through: it accepts any address of the test domain (no local_recipient_maps check), so local(8)
# finds the user unknown after the mail was taken and Postfix's bounce daemon writes the DSN, as a relay does when
# the next hop refuses a mail it had accepted. The second stands for the bounce domain's MX as other MTAs reach
# it: no client is in its mynetworks.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
  -o local_recipient_maps=
127.0.0.1:{mx_port} inet n - n - - smtpd
  -o mynetworks=192.0.2.0/32
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def need_postfix() -> None:
    """Postfix installed and this process root (Postfix starts as root); in CI anything missing is a failure."""
    missing = []
    if not os.path.exists(POSTFIX):
        missing.append("Postfix (apt-get install postfix, with debconf's 'No configuration', as .ci/run does)")
    if os.geteuid() != 0:
        missing.append("root (Postfix's master starts as root)")
    for kind, lookup, name in (("user", pwd.getpwnam, "postfix"), ("user", pwd.getpwnam, PIPE_USER),
                               ("group", grp.getgrnam, "postdrop")):
        try:
            lookup(name)
        except KeyError:
            missing.append(f"the {kind} {name}")
    if missing:
        (pytest.fail if IN_CI else pytest.skip)("the Postfix bounce test needs " + ", ".join(missing))


def readme_postfix_setup(replacements: dict[str, str]) -> list[tuple[str, str | None, str]]:
    """The README's Postfix block, its example names and paths replaced, as (file, command to run after, text)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Return-Path and bounces"):]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    for old, new in replacements.items():
        assert old in block, f"the README's Postfix block no longer mentions {old!r}: update this test"
        block = block.replace(old, new)
    files, name, then, lines = [], None, None, []
    for line in block.splitlines() + ["# end"]:
        header = re.match(r"# (\S+)(?: \(then: (.+)\))?$", line)
        if header:
            if name:
                files.append((name, then, "\n".join(lines).strip() + "\n"))
            name, then, lines = header.group(1), header.group(2), []
        else:
            lines.append(line)
    assert [Path(f[0]).name for f in files] == ["main.cf", "transport", "master.cf"], (
        f"the README's Postfix block changed shape ({[f[0] for f in files]}): update this test to run it")
    return files


class Postfix:
    """A Postfix instance of its own: main.cf, master.cf, queue and data in one directory, smtpd on loopback."""

    def __init__(self, root: Path, port: int, mailer: Path, env_file: Path):
        self.root, self.port, self.mx_port = root, port, _free_port()
        self.etc = root / "etc"
        for sub in ("etc", "spool", "data"):
            (root / sub).mkdir()
        shutil.chown(root / "data", "postfix")
        main_cf = MAIN_CF.format(root=root, test_domain=TEST_DOMAIN)
        master_cf = MASTER_CF.format(port=port, mx_port=self.mx_port)
        replacements = {"bounces.example.com": BOUNCE_DOMAIN, "/etc/postfix/": f"{self.etc}/",
                        "/srv/mailer/.venv/bin/mailer": str(mailer), "/srv/mailer/.env": str(env_file),
                        "user=mailer": f"user={PIPE_USER}"}
        after: list[str] = []
        for name, then, text in readme_postfix_setup(replacements):
            if name == "main.cf":
                main_cf += text
            elif name == "master.cf":
                master_cf += text
            else:
                assert Path(name).parent == self.etc, f"the README puts {name} outside Postfix's directory"
                Path(name).write_text(text)
                if then:
                    after.append(then)
        (self.etc / "main.cf").write_text(main_cf)
        (self.etc / "master.cf").write_text(master_cf)
        for command in after:
            program, *args = shlex.split(command)
            self._run(program, "-c", str(self.etc), *args)

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}\n{self.log()}"

    def start(self) -> Postfix:
        self._run(POSTFIX, "-c", str(self.etc), "start")
        for port in (self.port, self.mx_port):
            wait_until(lambda: listening(port), 20, lambda: f"Postfix did not listen on port {port}:\n{self.log()}")
        return self

    def stop(self) -> None:
        pid_file = self.root / "spool" / "pid" / "master.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True, timeout=30)
        if pid is not None:
            wait_until(lambda: not Path(f"/proc/{pid}").exists(), 20, lambda: f"Postfix's master {pid} did not stop")

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_until(condition, timeout: float, describe) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(describe())


def env_file_for_the_pipe(path: Path, env: dict[str, str]) -> Path:
    """The app's settings as a `.env` file: pipe(8) gives the command an almost empty environment."""
    keys = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SMTP_URL", "SECRET_KEY", "ERASURE_KEY", "BASE_URL",
            "MAIL_FROM", "BOUNCE_DOMAIN", "MAILER_INSTANCE")
    path.write_text("".join(f'{key}="{env[key]}"\n' for key in keys))
    path.chmod(0o644)
    return path


def as_pipe_user(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", PIPE_USER, "--", *args], capture_output=True, text=True, timeout=60)


def open_the_way(path: Path, request) -> None:
    """Let the pipe's user pass through (not list) each directory above `path`, as an install under /srv would;
    a checkout under root's home (mode 700) is otherwise out of its reach. Each mode is restored after the test."""
    for directory in (path, *path.parents):
        mode = stat.S_IMODE(directory.stat().st_mode)
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            request.addfinalizer(lambda directory=directory, mode=mode: directory.chmod(mode))


def mailer_for_the_pipe(root: Path, env_file: Path) -> Path:
    """This venv's `mailer`, by an interpreter the pipe's user may run; checked as that user with `env_file`.

    A venv made from a Python in root's home (pyenv) is out of that user's reach: then the same installation is
    run by the system's Python of the same minor version, from a venv of its own that adds this venv's packages.
    """
    mailer = MAILER
    if as_pipe_user(sys.executable, "-c", "pass").returncode != 0:
        mailer = mailer_on_the_system_python(root / "venv")
    check = as_pipe_user(str(mailer), "--env-file", str(env_file), "bounces", "--help")
    assert check.returncode == 0, f"{PIPE_USER} cannot run {mailer}:\n{check.stdout}{check.stderr}"
    return mailer


def mailer_on_the_system_python(venv: Path) -> Path:
    """A venv of the system's Python that sees this venv's packages and the project; its `mailer` script."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = next((p for p in (f"/usr/bin/{version}", f"/usr/local/bin/{version}")
                   if os.path.exists(p) and as_pipe_user(p, "-c", "pass").returncode == 0), None)
    if system is None:
        (pytest.fail if IN_CI else pytest.skip)(
            f"the pipe transport runs `mailer` as {PIPE_USER}, who can run neither {sys.executable} nor a "
            f"system {version}: install {version} (apt-get install python3) or make the venv from one")
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True, timeout=60)
    packages = sysconfig.get_paths()["purelib"]
    # addsitedir, not a bare path: the .pth files there run too, among them the editable install's finder.
    (venv / "lib" / version / "site-packages" / "mailer-under-test.pth").write_text(
        f"import site; site.addsitedir({packages!r})\n")
    script = venv / "bin" / "mailer"
    script.write_text(f"#!{venv}/bin/python\n" + MAILER.read_text().split("\n", 1)[1])
    script.chmod(0o755)
    return script


@pytest.fixture
def postfix_stack(redis_url, tmp_path, request):
    """Postfix on a free loopback port, a database of its own, and a real worker sending through that Postfix."""
    need_postfix()
    # Not under pytest's temporary directory, which only root may enter: Postfix's daemons and the pipe's
    # user must reach their files.
    root = Path(tempfile.mkdtemp(prefix="mailer-postfix-"))
    root.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    port = _free_port()
    instance = root / "instance"
    instance.mkdir()
    env = build_stack_env(fresh_database("mailer_postfix"), redis_url, f"smtp://127.0.0.1:{port}", instance,
                          BOUNCE_DOMAIN=BOUNCE_DOMAIN)
    env_file = env_file_for_the_pipe(root / "mailer.env", env)
    for needed in (ROOT, Path(sysconfig.get_paths()["purelib"]), Path(sys.executable).resolve().parent):
        open_the_way(needed, request)
    postfix = Postfix(root, port, mailer_for_the_pipe(root, env_file), env_file)
    request.addfinalizer(postfix.stop)  # before starting: a start that fails half-way may leave the master running
    postfix.start()
    worker = Worker(env, tmp_path / "worker.log", name="postfix")
    request.addfinalizer(worker.stop)
    app = make_app(tmp_path, **stack_overrides(env), BOUNCE_DOMAIN=BOUNCE_DOMAIN)
    with app.app_context():
        yield postfix, worker
        db.session.remove()
        db.engine.dispose()


def test_postfix_returns_a_welcome_to_an_unknown_user_and_the_reader_ends_bounced(postfix_stack):
    postfix, worker = postfix_stack
    reader = Subscriber(email=f"no-such-reader@{TEST_DOMAIN}", status=Status.CONFIRMED.value, confirmed_at=utcnow())
    db.session.add(reader)
    db.session.flush()
    welcome.start_welcome(db.session, reader)  # what a confirmation does: the first step is owed at once
    db.session.commit()
    ledger.wake()
    mail = db.session.scalar(select(Delivery).where(Delivery.subscriber_id == reader.id, Delivery.kind == "welcome"))

    def reader_status() -> str:
        db.session.expire_all()
        return db.session.get(Subscriber, reader.id).status

    wait_until(lambda: reader_status() == Status.BOUNCED.value, 45, lambda: (
        f"the reader is still {reader_status()}\n--- Postfix:\n{postfix.log()}\n--- worker:\n{worker.log()}"))

    # Postfix took the mail (a 250: the row is sent), bounced it itself, and piped its DSN to our command, which
    # exited 0 (Postfix logs that once the command has ended, a moment after its commit).
    assert db.session.get(Delivery, mail.id).status == "sent"
    assert re.search(rf"to=<{re.escape(reader.email)}>, relay=local, .*dsn=5\.1\.1, status=bounced \(unknown user",
                     postfix.log())
    piped = re.compile(rf"to=<{re.escape(verp.envelope_sender(mail.id))}>, relay=mailer-bounces, .*status=sent")
    wait_until(lambda: piped.search(postfix.log()), 15, lambda: f"no DSN piped to the command:\n{postfix.log()}")
    [event] = db.session.scalars(select(MailEvent))
    assert (event.provider, event.kind, event.delivery_id, event.email) == ("dsn", "hard_bounce", mail.id, reader.email)
    assert event.subscriber_id == reader.id
    assert db.session.get(Subscriber, reader.id).welcome_next_at is None  # the sequence stopped

    # The same Postfix as the bounce domain's MX takes a DSN from any client for that domain, and relays nothing else.
    with smtplib.SMTP("127.0.0.1", postfix.mx_port, timeout=10) as mx:
        mx.ehlo("mx.elsewhere.test")
        assert mx.mail("<>")[0] == 250
        assert mx.rcpt(verp.envelope_sender(mail.id))[0] == 250
        code, reply = mx.rcpt("someone@elsewhere.test")
        assert code in (454, 554) and b"Relay access denied" in reply  # not an open relay
        mx.rset()
