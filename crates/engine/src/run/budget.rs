//! The memory of rows in flight: a byte budget shared by the runs of one instance.
//!
//! A run reads pages ahead of the write, transforms them on two threads and hands them on through short
//! queues; counted in pages, as many as fourteen of them could be alive at once (read, queued, being
//! transformed, computed and waiting, being written), which at PostgreSQL's 20,000-row batches was most
//! of the server's 320 MiB peak (see BENCHMARKS.md, "Ten million profiles"). Counted in pages, the bound
//! also grows with the width of a row. Here every page carries a [`Charge`] of the bytes it holds, from
//! the moment it is read until its rows are written; the reader starts a page only while the charges
//! alive sum to less than the budget. The bound is in bytes, whatever the batch size or the row's width,
//! and shared by the instance's runs, so that several runs at once stay within it too.
//!
//! The reader is the only stage that waits, and it waits only for pages already admitted, each of which
//! the run that read it drains without needing the budget again: no stage can wait on itself. A page is
//! admitted whole, so the budget can be overshot by up to one page (and by what transforming adds to the
//! pages already admitted); a page larger than the budget is read alone.

use std::sync::Arc;

use serde_json::Value as Json;
use sluice_core::{RawProfile, Value};
use tokio::sync::watch;

/// The bytes that the rows in flight may hold, shared by the runs of one instance.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: watch::Sender<usize>,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            used: watch::Sender::new(0),
        })
    }

    /// Waits until the charges alive leave room for another page. Cancel-safe.
    pub async fn room(&self) {
        let mut used = self.used.subscribe();
        // The sender lives in `self`: the wait can only end by finding room.
        let _ = used.wait_for(|&u| u < self.limit).await;
    }

    /// Charges `bytes` to the budget until the charge is dropped (or resized).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.used.send_modify(|u| *u += bytes);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        *self.used.borrow()
    }
}

/// Bytes held by a page in flight; given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Charge {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Makes the charge `bytes`: a page that became its rows holds what the rows hold. Never waits.
    pub fn resize(&mut self, bytes: usize) {
        if bytes != self.bytes {
            let old = self.bytes;
            self.budget.used.send_modify(|u| *u = *u - old + bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.budget.used.send_modify(|u| *u -= bytes);
    }
}

/// What a page of stored profiles holds: their ids and documents as read.
pub(crate) fn raw_page_bytes(page: &[RawProfile]) -> usize {
    page.iter()
        .map(|p| std::mem::size_of::<RawProfile>() + p.id.capacity() + p.doc.capacity())
        .sum()
}

/// What a row of values holds, the values' own heap included (an estimate for JSON values: what
/// they would take as text, which is near what their tree takes).
pub(crate) fn row_bytes(values: &[Value]) -> usize {
    std::mem::size_of_val(values) + values.iter().map(value_heap).sum::<usize>()
}

fn value_heap(v: &Value) -> usize {
    match v {
        Value::String(s) if s.is_heap_allocated() => s.capacity(),
        Value::Json(j) => std::mem::size_of::<Json>() + json_bytes(j),
        Value::Array(items) => row_bytes(items),
        Value::Bytes(b) => b.capacity(),
        _ => 0,
    }
}

fn json_bytes(j: &Json) -> usize {
    const NODE: usize = std::mem::size_of::<Json>();
    match j {
        Json::String(s) => s.capacity(),
        Json::Array(items) => items.iter().map(|i| NODE + json_bytes(i)).sum(),
        // Keys, and an index entry each (serde_json's map keeps its order).
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| k.capacity() + 2 * NODE + json_bytes(v))
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_reader_waits_until_a_page_is_given_back() {
        let budget = Budget::new(100);
        let first = budget.charge(60);
        budget.room().await; // 60 < 100: room
        let mut second = budget.charge(60);
        assert_eq!(budget.used(), 120);
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.room()).await;
        assert!(waiting.is_err(), "a full budget must make the reader wait");
        second.resize(30); // the page became smaller rows
        assert_eq!(budget.used(), 90);
        tokio::time::timeout(Duration::from_secs(5), budget.room())
            .await
            .expect("room once the charges shrink below the limit");
        drop(first);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_page_larger_than_the_budget_is_read_alone() {
        let budget = Budget::new(10);
        budget.room().await; // nothing in flight: always room
        let big = budget.charge(1_000);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), budget.room())
                .await
                .is_err()
        );
        drop(big);
        budget.room().await;
    }

    #[test]
    fn rows_count_their_values_and_what_those_hold() {
        let short = vec![Value::Int(1), Value::String("ab".into())];
        let long = vec![Value::Int(1), Value::String("x".repeat(1_000).into())];
        assert_eq!(row_bytes(&short), 2 * std::mem::size_of::<Value>());
        assert!(row_bytes(&long) >= 2 * std::mem::size_of::<Value>() + 1_000);
        let json = vec![Value::json(serde_json::json!({"name": "y".repeat(500)}))];
        assert!(row_bytes(&json) > 500);
    }
}
