# expect: failed row
# says: memory limit of
def transform(p):
    a = []
    while True:
        a.append(bytearray(1 << 20))
