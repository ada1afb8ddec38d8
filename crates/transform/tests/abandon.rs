//! Shutdown: once scripts are abandoned (for the whole process, so this file is a test program of its
//! own), threads evaluating a JavaScript or Python script return within moments, whatever the scripts'
//! time limits, and later profiles fail without running.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sluice_core::pipeline::Transformation;
use sluice_core::Schema;
use sluice_transform::{Limits, Output, RowError, Transform, ABANDONED_MESSAGE};

mod common;
use common::*;

fn evaluate_in_a_thread(
    transformation: Transformation,
) -> std::thread::JoinHandle<Vec<Result<Output, RowError>>> {
    let limits = Limits {
        time_per_profile: Duration::from_secs(30),
        python_workers: 1,
        ..Limits::default()
    };
    let t = Transform::compile(&transformation, "id", &Schema::default(), &table(), limits)
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        let mut ev = t.evaluator().unwrap();
        let profiles: Vec<_> = (0..5).map(|_| profile(json!({}))).collect();
        ev.eval_batch(&profiles, Utc::now())
    })
}

#[test]
fn abandoned_scripts_release_their_threads_at_once() {
    let js = evaluate_in_a_thread(Transformation::Javascript(
        "function transform(p) { const o = {id: 'x'}; Object.defineProperty(o, 'email', {enumerable: true, get() { while (true) {} }}); return o; }".into(),
    ));
    let py = evaluate_in_a_thread(Transformation::Python(
        "import time\ndef transform(p):\n    time.sleep(25)\n    return {'id': 'x'}\n".into(),
    ));
    // Both are inside a profile that would take 25 s or more.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!js.is_finished() && !py.is_finished());
    let abandoned = Instant::now();
    sluice_transform::abandon_scripts();
    for handle in [js, py] {
        while !handle.is_finished() {
            assert!(
                abandoned.elapsed() < Duration::from_secs(2),
                "an evaluating thread is still running"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let rows = handle.join().unwrap();
        assert_eq!(rows.len(), 5);
        for row in rows {
            assert_eq!(row.unwrap_err().message, ABANDONED_MESSAGE);
        }
    }
}
