//! The mapping expression parser and type check on any text, and the evaluation of what they accept:
//! no panic, and an expression is refused or evaluated, never anything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::mapping::Expression;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = sluice_fuzz::schema();
    let Ok(expr) = Expression::compile(text, &schema) else {
        return;
    };
    let _ = expr.ty();
    let _ = expr.properties();
    for p in sluice_fuzz::profiles() {
        let _ = expr.eval(&p, sluice_fuzz::now());
    }
});
