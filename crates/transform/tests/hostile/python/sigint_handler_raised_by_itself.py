# expect: failed row
# says: Operation not permitted
# SIGINT is the one signal the interpreter sets a handler for itself; raising it must still be refused.
_signal = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["sys"].modules["_signal"]
frames = []


def transform(p):
    _signal.signal(_signal.SIGINT, lambda sig, frame: frames.append(frame))
    _signal.raise_signal(_signal.SIGINT)
    return {"id": ",".join(frames[0].f_back.f_locals) if frames else "no frame"}
