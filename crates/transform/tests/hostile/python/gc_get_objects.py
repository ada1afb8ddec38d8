# expect: failed row
# says: not allowed | ImportError
# The garbage collector lists every object, the worker's frames' contents included.
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__


def transform(p):
    gc = G["sys"].modules.get("gc") or __import__("gc")
    return {"id": str(len(gc.get_objects()))}
