//! One evaluator stopped by its own flag (a run's cancel) and one giving up on a stuck script, while
//! other evaluators of the process go on: neither is the process-wide abandon of shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sluice_core::pipeline::Transformation;
use sluice_core::Schema;
use sluice_transform::{Limits, Output, Transform, STOPPED_MESSAGE, TIMEOUTS_IN_A_ROW};

mod common;
use common::*;

fn compile(transformation: Transformation, time_per_profile: Duration) -> Transform {
    let limits = Limits {
        time_per_profile,
        python_workers: 2,
        ..Limits::default()
    };
    Transform::compile(&transformation, "id", &Schema::default(), &table(), limits)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Profiles `p0000`, `p0001`, … with their number in `n`.
fn profiles(count: usize) -> Vec<sluice_core::Profile> {
    (0..count)
        .map(|i| {
            let mut p = profile(json!({ "n": i }));
            p.id = format!("p{i:04}");
            p
        })
        .collect()
}

fn stopped_in_a_thread(transformation: Transformation) {
    let t = compile(transformation, Duration::from_secs(30));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut ev = t.evaluator_with_stop(flag).unwrap();
        // Large enough to be split among the Python workers.
        ev.eval_batch(&profiles(1000), Utc::now())
    });
    // Inside a profile that would take 25 s or more.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!handle.is_finished());
    let stopped = Instant::now();
    stop.store(true, Ordering::Relaxed);
    while !handle.is_finished() {
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "the evaluating thread is still running"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let rows = handle.join().unwrap();
    assert_eq!(rows.len(), 1000);
    for row in rows {
        let e = row.unwrap_err();
        assert_eq!(e.message, STOPPED_MESSAGE);
        assert!(!e.evaluated());
    }
}

#[test]
fn a_stopped_javascript_evaluator_interrupts_its_call_and_evaluates_nothing_more() {
    stopped_in_a_thread(Transformation::Javascript(
        "function transform(p) { while (true) {} }".into(),
    ));
}

#[test]
fn a_stopped_python_evaluator_stops_waiting_for_its_workers() {
    stopped_in_a_thread(Transformation::Python(
        "def transform(p):\n    while True:\n        pass\n".into(),
    ));
}

#[test]
fn stopping_one_evaluator_leaves_the_others_alone() {
    let t = compile(
        Transformation::Javascript("function transform(p) { return {id: p._id}; }".into()),
        Duration::from_millis(100),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopped = t.evaluator_with_stop(stop.clone()).unwrap();
    let mut other = t.evaluator().unwrap();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        stopped
            .eval(&profile(json!({})), Utc::now())
            .unwrap_err()
            .message,
        STOPPED_MESSAGE
    );
    assert!(matches!(
        other.eval(&profile(json!({})), Utc::now()),
        Ok(Output::Row(_))
    ));
    assert_eq!(stopped.gave_up(), None);
}

/// Profiles 0..10 are transformed, every later one takes longer than the limit: the evaluator gives up
/// after TIMEOUTS_IN_A_ROW of them and evaluates none of the rest.
fn gives_up(transformation: Transformation) {
    let t = compile(transformation, Duration::from_millis(50));
    let mut ev = t.evaluator().unwrap();
    let started = Instant::now();
    let rows = ev.eval_batch(&profiles(600), Utc::now());
    let took = started.elapsed();
    assert_eq!(rows.len(), 600);
    assert!(rows[..10].iter().all(|r| matches!(r, Ok(Output::Row(_)))));
    for r in &rows[10..10 + TIMEOUTS_IN_A_ROW] {
        let e = r.as_ref().unwrap_err();
        assert!(e.evaluated(), "{e}");
        assert!(e.message.contains("time limit of 50 ms"), "{e}");
    }
    for r in &rows[10 + TIMEOUTS_IN_A_ROW..] {
        let e = r.as_ref().unwrap_err();
        assert!(!e.evaluated(), "{e}");
        assert!(e.message.starts_with("not transformed: "), "{e}");
    }
    let why = ev.gave_up().expect("gave up");
    assert!(
        why.contains("time limit of 50 ms") && why.contains("20 profiles in a row"),
        "{why}"
    );
    // 590 profiles at 50 ms each would take half a minute.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // It stays given up.
    assert!(!ev
        .eval(&profile(json!({"n": 0})), Utc::now())
        .unwrap_err()
        .evaluated());
}

#[test]
fn javascript_stuck_on_the_time_limit_is_given_up() {
    gives_up(Transformation::Javascript(
        "function transform(p) { if (p.n < 10) return {id: p._id}; while (true) {} }".into(),
    ));
}

#[test]
fn python_stuck_on_the_time_limit_is_given_up() {
    gives_up(Transformation::Python(
        "import time\ndef transform(p):\n    if p['n'] < 10:\n        return {'id': p['_id']}\n    time.sleep(0.08)\n"
            .into(),
    ));
}

#[test]
fn timeouts_that_are_not_in_a_row_are_only_failed_rows() {
    let t = compile(
        Transformation::Javascript(
            "function transform(p) { if (p.n % 2) { while (true) {} } return {id: p._id}; }".into(),
        ),
        Duration::from_millis(20),
    );
    let mut ev = t.evaluator().unwrap();
    let rows = ev.eval_batch(&profiles(3 * TIMEOUTS_IN_A_ROW), Utc::now());
    let failed = rows.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 3 * TIMEOUTS_IN_A_ROW / 2);
    assert!(rows
        .iter()
        .all(|r| r.as_ref().map_or_else(|e| e.evaluated(), |_| true)));
    assert_eq!(ev.gave_up(), None);
}

#[test]
fn python_hanging_on_every_profile_is_given_up() {
    let t = compile(
        Transformation::Python("def transform(p):\n    while True:\n        pass\n".into()),
        Duration::from_millis(50),
    );
    let mut ev = t.evaluator().unwrap();
    let started = Instant::now();
    let rows = ev.eval_batch(&profiles(1000), Utc::now());
    let took = started.elapsed();
    eprintln!("gave up on a hanging Python script after {took:?}");
    assert_eq!(rows.len(), 1000);
    assert!(ev.gave_up().is_some());
    assert!(rows.iter().all(|r| r.is_err()));
    // Each hang costs a worker killed for silence and a fresh one; 1,000 of them would take minutes.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
