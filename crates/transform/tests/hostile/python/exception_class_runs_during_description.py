# expect: failed row
# says: `open` is not allowed | Sly
# An exception whose attributes run code while the worker describes it: nothing is trusted then.
G = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__
leak = []


class Sly(Exception):
    def __str__(self):
        leak.append(G["sys"].modules["_io"].open("{{DATA_DIR}}/secret.key").read())
        return "sly"

    @property
    def __traceback__(self):
        leak.append(G["sys"].modules["_io"].open("{{DATA_DIR}}/secret.key").read())
        return None


def transform(p):
    if leak:
        return {"id": leak[0]}
    raise Sly()
