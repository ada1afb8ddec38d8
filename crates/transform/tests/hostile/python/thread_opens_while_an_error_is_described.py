# expect: failed row
# says: can't start new thread
# The escape that was seen: a thread keeps trying _io.open while the worker describes an exception (when
# its audit hook trusted everything). Threads cannot start now, and the hook never trusts wholesale.
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__
sys = G["sys"]
_thread = sys.modules["_thread"]
_io = sys.modules["_io"]
found = []
started = []


def spin():
    for _ in range(500000):
        try:
            found.append(_io.open("{{DATA_DIR}}/secret.key").read())
            return
        except BaseException:
            pass


def transform(p):
    if found:
        return {"id": found[0]}
    if not started:
        started.append(_thread.start_new_thread(spin, ()))
    raise ValueError("describe me")
