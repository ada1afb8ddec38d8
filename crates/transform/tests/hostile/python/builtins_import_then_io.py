# expect: failed row
# says: not allowed
B = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == "_wrap_close"][0].__init__.__globals__["__builtins__"]


def transform(p):
    socket = B["__import__"]("socket")
    s = socket.create_connection(("127.0.0.1", 5432))
    return {"id": str(s)}
