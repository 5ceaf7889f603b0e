#!/usr/bin/env python3
# A stand-in for ocijail, the OCI runtime for FreeBSD jails (test code, never shipped).
#
# It has ocijail's command line (global --root, --log, --log-format, --log-level,
# --version; the subcommands create, start, state, kill, delete, exec, list, features and
# their flags; anything else is refused as ocijail's CLI11 parser refuses it, exit 109)
# and answers as ocijail does: its state documents, its error messages (logged as one
# JSON line with --log-format json, and "Error: ..." on stderr), its checks of the
# org.freebsd.jail.* annotations. It makes no jail: the container's process is a `sleep`
# on the host, `exec` runs the process on the host.
#
# Every call's argv is appended to the file `calls` next to this script, one argument a
# line and `---` after each call. A file `version` next to it replaces the --version
# answer.

import json
import os
import shutil
import signal
import subprocess
import sys
import time

if os.environ.get("FAKE_PROBE"):
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(sys.argv[0]))
ARGV = sys.argv[1:]
with open(os.path.join(HERE, "calls"), "a") as calls:
    calls.write("".join(a + "\n" for a in ARGV) + "---\n")

LOG = {"file": None, "format": "text"}


class Failure(Exception):
    pass


def log_error(message):
    if LOG["format"] == "json":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "000000000Z"
        line = json.dumps({"level": "error", "msg": message, "time": stamp}, sort_keys=True)
    else:
        line = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ": " + message
    if LOG["file"]:
        with open(LOG["file"], "a") as f:
            f.write(line + "\n")
        sys.stderr.write("Error: " + message + "\n")
    else:
        sys.stderr.write(line + "\n")


def not_expected(arg):
    sys.stderr.write("The following argument was not expected: %s\nRun with --help for more information.\n" % arg)
    sys.exit(109)


def parse(args, options, flags, positionals):
    """CLI11 as ocijail sets it up: `options` take a value (`--x v` or `--x=v`), `flags`
    do not; names map aliases to one key."""
    got, pos = {}, []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) > 1:
            name, eq, value = a.partition("=")
            if name in options:
                if not eq:
                    i += 1
                    if i >= len(args):
                        sys.stderr.write("%s: 1 required TEXT missing\n" % name)
                        sys.exit(107)
                    value = args[i]
                got[options[name]] = value
            elif name in flags and not eq:
                got[flags[name]] = True
            else:
                not_expected(a)
        else:
            if len(pos) >= len(positionals):
                not_expected(a)
            pos.append(a)
        i += 1
    for name, required in positionals[len(pos):]:
        if required:
            sys.stderr.write("%s is required\nRun with --help for more information.\n" % name)
            sys.exit(106)
    return got, pos


def state_dir(root, cid):
    return os.path.join(root, cid)


def load(root, cid):
    d = state_dir(root, cid)
    if not os.path.isdir(d):
        raise Failure("opening state lock: No such file or directory")
    with open(os.path.join(d, "state.json")) as f:
        return json.load(f)


def save(root, cid, state):
    with open(os.path.join(state_dir(root, cid), "state.json"), "w") as f:
        json.dump(state, f)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_status(root, cid, state):
    if state["status"] in ("created", "running") and not alive(state["pid"]):
        state["status"] = "stopped"
        save(root, cid, state)


def report(cid, state):
    res = {"ociVersion": "1.0.2", "id": cid, "status": state["status"], "bundle": state["bundle"]}
    if state["status"] != "stopped":
        res["pid"] = state.get("pid", -1)
    annotations = dict(state["config"].get("annotations") or {})
    annotations["org.freebsd.jail.jid"] = str(state["jid"])
    res["annotations"] = annotations
    return res


KNOWN_ALLOW = {
    "allow.adjtime", "allow.chflags", "allow.extattr", "allow.mlock", "allow.mount",
    "allow.mount.devfs", "allow.mount.fdescfs", "allow.mount.nullfs", "allow.mount.procfs",
    "allow.mount.tmpfs", "allow.mount.zfs", "allow.nfsd", "allow.quotas", "allow.raw_sockets",
    "allow.read_msgbuf", "allow.reserved_ports", "allow.routing", "allow.set_hostname",
    "allow.setaudit", "allow.settime", "allow.socket_af", "allow.suser", "allow.sysvipc",
    "allow.unprivileged_parent_tampering", "allow.unprivileged_proc_debug",
}


def jail_annotations(annotations):
    """ocijail's reading of the annotations; raises its errors."""
    for key in ("org.freebsd.jail.vnet", "org.freebsd.jail.sysvmsg",
                "org.freebsd.jail.sysvsem", "org.freebsd.jail.sysvshm"):
        value = annotations.get(key)
        if value is not None and value not in ("new", "inherit", "disable"):
            raise Failure("bad value for %s: %s" % (key, value))
    if annotations.get("org.freebsd.jail.vnet") == "disable":
        raise Failure("bad value for org.freebsd.jail.vnet: disable")
    for key in sorted(annotations):
        if key.startswith("org.freebsd.jail.allow.") and \
                "allow." + key[len("org.freebsd.jail.allow."):] not in KNOWN_ALLOW:
            # ocijail logs its warnings as it logs errors.
            log_error("warning: unknown jail allow annotation '%s', ignoring" % key)


def next_jid(root):
    path = os.path.join(root, ".jid")
    jid = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as f:
        f.write(str(jid))
    return jid


def spawn(args, env=None):
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env).pid


def create(root, args):
    opts, pos = parse(args, {"--bundle": "bundle", "-b": "bundle", "--console-socket": "console",
                             "--pid-file": "pid_file", "--preserve-fds": "preserve_fds"},
                      {}, [("container-id", True)])
    cid = pos[0]
    bundle = opts.get("bundle", ".")
    if not os.path.isdir(bundle):
        sys.stderr.write("--bundle: Directory does not exist: %s\n" % bundle)
        sys.exit(105)
    if os.path.exists(os.path.join(state_dir(root, cid), "state.json")):
        raise Failure("container %s exists" % cid)
    config_path = os.path.join(bundle, "config.json")
    if not os.path.isfile(config_path):
        raise Failure("create: bundle directory must contain config.json")
    with open(config_path) as f:
        config = json.load(f)
    if "process" not in config:
        raise Failure("create: malformed config: no process")
    terminal = config["process"].get("terminal", False)
    if opts.get("console") and not terminal:
        raise Failure("--console-socket provided but process.terminal is false")
    root_path = os.path.join(bundle, (config.get("root") or {}).get("path", "root"))
    if not os.path.isdir(root_path):
        raise Failure('root directory "%s" must be a directory' % root_path)
    jail_annotations(config.get("annotations") or {})
    os.makedirs(root, exist_ok=True)
    jid = next_jid(root)
    shutil.rmtree(state_dir(root, cid), ignore_errors=True)
    os.makedirs(state_dir(root, cid))
    pid = spawn(["sleep", "120"])
    if opts.get("pid_file"):
        with open(opts["pid_file"], "w") as f:
            f.write(str(pid))
    save(root, cid, {"status": "created", "pid": pid, "jid": jid, "bundle": bundle,
                     "root_path": root_path, "config": config})


def start(root, args):
    _, pos = parse(args, {}, {}, [("container-id", True)])
    state = load(root, pos[0])
    if state["status"] != "created":
        raise Failure('start: container not in "created" state (currently "%s")' % state["status"])
    state["status"] = "running"
    save(root, pos[0], state)


def state_cmd(root, args):
    _, pos = parse(args, {}, {}, [("container-id", True)])
    state = load(root, pos[0])
    check_status(root, pos[0], state)
    sys.stdout.write(json.dumps(report(pos[0], state), sort_keys=True, separators=(",", ":")))


SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15}


def kill(root, args):
    opts, pos = parse(args, {"--pid": "pid", "-p": "pid"}, {"--all": "all", "-a": "all"},
                      [("container-id", True), ("signal", False)])
    name = pos[1] if len(pos) > 1 else "15"
    try:
        signum = int(name)
    except ValueError:
        signum = SIGNALS.get(name, 0)
    if signum == 0:
        raise Failure("Unknown signal name " + name)
    state = load(root, pos[0])
    if state["status"] in ("created", "running"):
        try:
            os.kill(state["pid"], signum)
        except ProcessLookupError:
            pass


def delete(root, args):
    opts, pos = parse(args, {}, {"--force": "force"}, [("container-id", True)])
    cid = pos[0]
    if not os.path.exists(os.path.join(state_dir(root, cid), "state.json")):
        shutil.rmtree(state_dir(root, cid), ignore_errors=True)
        return
    state = load(root, cid)
    check_status(root, cid, state)
    status = state["status"]
    if status == "created" or (status == "running" and opts.get("force")):
        try:
            os.kill(state["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    elif status != "stopped":
        raise Failure('delete: container not in "stopped" or "created" state (currently "%s")' % status)
    shutil.rmtree(state_dir(root, cid))


def exec_cmd(root, args):
    opts, pos = parse(args, {"--process": "process", "--console-socket": "console",
                             "--pid-file": "pid_file", "--preserve-fds": "preserve_fds"},
                      {"--tty": "tty", "-t": "tty", "--detach": "detach", "-d": "detach"},
                      [("container-id", True)])
    if "process" not in opts:
        sys.stderr.write("--process is required\nRun with --help for more information.\n")
        sys.exit(106)
    with open(opts["process"]) as f:
        process = json.load(f)
    if "cwd" not in process:
        raise Failure("create: malformed config: no process.cwd")
    if not process.get("args"):
        raise Failure("create: malformed config: no process.args")
    load(root, pos[0])
    argv = process["args"]
    if shutil.which(argv[0]) is None:
        raise Failure("'%s' not found in $PATH: No such file or directory" % argv[0])
    env = dict(os.environ)
    env.update(e.split("=", 1) for e in process.get("env", []) if "=" in e)
    if opts.get("detach"):
        pid = spawn(argv, env)
        if opts.get("pid_file"):
            with open(opts["pid_file"], "w") as f:
                f.write(str(pid))
        return
    os.execvpe(argv[0], argv, env)


def list_cmd(root, args):
    opts, _ = parse(args, {"--format": "format", "-f": "format", "--quiet": "quiet", "-q": "quiet"}, {}, [])
    if not os.path.isdir(root):
        raise Failure("filesystem error: directory iterator cannot open directory: No such file or directory [%s]" % root)
    entries = []
    for cid in sorted(os.listdir(root)):
        if not os.path.isfile(os.path.join(root, cid, "state.json")):
            continue
        state = load(root, cid)
        check_status(root, cid, state)
        pid = 0 if state["status"] == "stopped" else state["pid"]
        entries.append({"id": cid, "pid": pid, "status": state["status"], "bundle": state["bundle"]})
    if opts.get("format", "table").lower() == "json":
        sys.stdout.write(json.dumps(entries or None, sort_keys=True, separators=(",", ":")))
    else:
        sys.stdout.write("ID PID STATUS BUNDLE\n")
        for e in entries:
            sys.stdout.write("%s %s %s %s\n" % (e["id"], e["pid"], e["status"], e["bundle"]))


def features(root, args):
    parse(args, {}, {}, [])
    sys.stdout.write(json.dumps({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "noexec"],
    }, sort_keys=True, separators=(",", ":")))


COMMANDS = {"create": create, "start": start, "state": state_cmd, "kill": kill,
            "delete": delete, "exec": exec_cmd, "list": list_cmd, "features": features}


def main():
    root = "/var/run/ocijail"
    i = 0
    globals_with_value = {"--root", "--log", "--log-format", "--log-level", "--testing"}
    while i < len(ARGV):
        name, eq, value = ARGV[i].partition("=")
        if name == "--version" and not eq:
            path = os.path.join(HERE, "version")
            sys.stdout.write(open(path).read() if os.path.exists(path) else "ocijail version 0.6.0-dev\n")
            sys.exit(0)
        if name not in globals_with_value:
            break
        if not eq:
            i += 1
            value = ARGV[i]
        if name == "--root":
            root = value
        elif name == "--log":
            LOG["file"] = value
        elif name == "--log-format":
            if value.lower() not in ("text", "json"):
                sys.stderr.write("--log-format: Check %s value in {text,json} FAILED\n" % value)
                sys.exit(105)
            LOG["format"] = value.lower()
        elif name == "--log-level" and value.lower() not in ("info", "warn", "debug"):
            sys.stderr.write("--log-level: Check %s value in {info,warn,debug} FAILED\n" % value)
            sys.exit(105)
        i += 1
    if i >= len(ARGV):
        sys.stderr.write("A subcommand is required\n")
        sys.exit(106)
    command = COMMANDS.get(ARGV[i])
    if command is None:
        not_expected(ARGV[i])
    if LOG["file"]:
        open(LOG["file"], "a").close()
    try:
        command(root, ARGV[i + 1:])
    except Failure as e:
        log_error(str(e))
        sys.exit(1)


main()
