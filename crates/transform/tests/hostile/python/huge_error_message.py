# expect: failed row
# says: ValueError: xxxx
def transform(p):
    raise ValueError("x" * (10 << 20))
