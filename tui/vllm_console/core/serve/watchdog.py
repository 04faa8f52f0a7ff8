"""The watchdog of a detachable server: a tiny stdlib-only script run as its own process.

`ServerProcess` (process.py) starts it in a session of its own for a server the user may
leave running. It holds the read end of a control pipe from the console: end of file (the
console died, even by SIGKILL) makes it stop the server as `ServerProcess.stop` does
(SIGTERM, the grace period, SIGKILL of the group); "detach" makes it stand down and keep
copying the server's output into the run's log file, redacted.
"""

# argv: server pid (= its process group), grace seconds, fd of the server's output, log path.
# stdin: the control pipe. "exit": stand down. "detach": stand down, keep the log. EOF: stop.
# WATCHDOG_SECRETS in its environment (never argv: that is public): a JSON list of strings
# replaced by *** in the log; the tail that could start one is held back until more comes.
WATCHDOG_SECRETS = "VLLM_CONSOLE_WATCHDOG_SECRETS"
WATCHDOG = r"""
import json, os, select, signal, sys, time
pid, grace, out_fd, log_path = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
secrets = json.loads(os.environ.pop("VLLM_CONSOLE_WATCHDOG_SECRETS", "[]"))
secrets = sorted((s.encode() for s in secrets if s), key=len, reverse=True)
keep = max(map(len, secrets), default=1) - 1
def redact(data):
    for secret in secrets:
        data = data.replace(secret, b"***")
    return data
def put(fd, data):
    while data:
        data = data[os.write(fd, data):]
for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
def alive():
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True
said = b""
while alive():
    if not select.select([0], [], [], 0.5)[0]:
        continue
    chunk = os.read(0, 64)
    said += chunk
    if b"exit" in said:
        sys.exit(0)
    if b"detach" in said:
        os.set_blocking(out_fd, True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        log = os.open(log_path, flags, 0o600)
        os.set_blocking(log, True)
        held = b""
        while data := os.read(out_fd, 65536):
            held = redact(held + data)
            cut = len(held) - keep
            if cut > 0:
                put(log, held[:cut])
                held = held[cut:]
        put(log, redact(held))
        sys.exit(0)
    if not chunk:
        break
else:
    sys.exit(0)
try:
    os.kill(pid, signal.SIGTERM)
except ProcessLookupError:
    pass
end = time.monotonic() + grace
while alive() and time.monotonic() < end:
    time.sleep(0.1)
try:
    os.killpg(pid, signal.SIGKILL)
except ProcessLookupError:
    pass
"""
