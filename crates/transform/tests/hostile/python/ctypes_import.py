# expect: refused
# says: module `ctypes` is not available
import ctypes


def transform(p):
    return {"id": "x"}
