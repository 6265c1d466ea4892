//! Instructions per single-task cycle, counted by `valgrind --tool=callgrind`.
//!
//! Wall-clock figures drift on a shared machine; instruction counts do not. The binary is
//! run twice under callgrind (`--cycles POOL N` with two values of `N`), counting only inside
//! `single::measured_cycles`, and the difference of the two totals over the difference of
//! the cycle counts is the cost of one cycle, without the runtime's and the pool's set-up.

use std::path::Path;
use std::process::Command;

use crate::contestant::PoolKind;

const FEW: u64 = 20_000;
const MANY: u64 = 120_000;

fn collected(exe: &Path, pool: PoolKind, cycles: u64) -> Option<f64> {
    let out = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--toggle-collect=*single::measured_cycles*",
        ])
        .arg(exe)
        .args(["--cycles", pool.name(), &cycles.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse::<f64>().ok())
}

/// Instructions per cycle of `pool`, by running `exe --cycles` under callgrind; `None`
/// when valgrind is not installed or fails.
pub fn instructions_per_cycle(exe: &Path, pool: PoolKind) -> Option<f64> {
    let few = collected(exe, pool, FEW)?;
    let many = collected(exe, pool, MANY)?;
    Some((many - few) / (MANY - FEW) as f64)
}
