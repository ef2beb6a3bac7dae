//! Structured input against an open client connection: peer bytes and frames interleaved with
//! API calls and clock steps, with the invariants of `ws_fuzz::run_ops` checked every step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_fuzz::{run_ops, Op};
use ws_proto::Role;

fuzz_target!(|ops: Vec<Op>| {
    run_ops(Role::Client, ops);
});
