// expect: failed row
// says: time limit of | cannot be written
function transform(p) {
  const evil = {
    toString() { while (true) {} },
    valueOf() { while (true) {} },
    [Symbol.toPrimitive]() { while (true) {} },
  };
  return { id: evil, s: evil, i: evil };
}
