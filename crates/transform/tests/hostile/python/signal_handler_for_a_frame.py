# expect: failed row
# says: Operation not permitted
# A signal handler is called with the interrupted frame: the worker's own, without any audit event.
_signal = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["sys"].modules["_signal"]
frames = []


def transform(p):
    _signal.signal(_signal.SIGALRM, lambda sig, frame: frames.append(frame))
    _signal.setitimer(_signal.ITIMER_REAL, 0.001)
    for _ in range(10 ** 6):
        if frames:
            return {"id": ",".join(frames[0].f_back.f_locals)}
    return {"id": "no frame"}
