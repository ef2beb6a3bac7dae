//! Masking throughput: `apply_mask` in place and `extend_masked` (copy + unmask into a `Vec`,
//! what the connection does with received payload) against plain memcpy of the same size and a
//! naive byte loop. See `common` for how cases are timed and `docs/benchmarks.md` for results.

mod common;

use std::hint::black_box;

use common::{bytes, isolate, print_summary, run_group, size_name, window_for, Case, Options};
use ws_proto::mask::{apply_mask, extend_masked};

const SIZES: [usize; 4] = [16, 1 << 10, 64 << 10, 1 << 20];

fn naive_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

fn main() {
    let opts = Options::from_env();
    opts.header("");
    let groups: Vec<String> = SIZES
        .iter()
        .map(|&size| format!("mask/{}", size_name(size)))
        .collect();
    if let Some(rows) = isolate(&opts, &groups) {
        print_summary(&opts, SUMMARY_HEADER, &rows);
        return;
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut rows = Vec::new();
    for size in SIZES {
        let group = format!("mask/{}", size_name(size));
        if !opts.wants(&group) {
            continue;
        }
        // Sources of the copies are windows of this pool placed relative to each destination
        // (see `window_for`); in-place cases work on their own buffers.
        let pool = bytes(size + 4096, size as u64);
        let pool = &pool[..];
        let (mut a, mut b) = (pool[..size].to_vec(), pool[..size].to_vec());
        let mut dst_copy = vec![0u8; size];
        let mut vec_plain: Vec<u8> = Vec::with_capacity(size);
        let mut vec_masked: Vec<u8> = Vec::with_capacity(size);
        let mut vec_odd: Vec<u8> = Vec::with_capacity(size);
        let mut vec_two_pass: Vec<u8> = Vec::with_capacity(size);
        let src_copy = window_for(pool, size, dst_copy.as_ptr(), 0);
        let src_plain = window_for(pool, size, vec_plain.as_ptr(), 0);
        let src_masked = window_for(pool, size, vec_masked.as_ptr(), 0);
        // As in the connection, where a payload follows a 6/8/14-byte header: the source sits
        // 6 bytes off the destination's alignment.
        let src_odd = window_for(pool, size, vec_odd.as_ptr(), 6);
        let src_two_pass = window_for(pool, size, vec_two_pass.as_ptr(), 0);
        let cases = vec![
            Case::new("memcpy (copy_from_slice)", size as u64, 0, || {
                black_box(&mut dst_copy[..]).copy_from_slice(black_box(src_copy));
            }),
            Case::new("apply_mask (in place)", size as u64, 0, || {
                apply_mask(black_box(&mut a[..]), black_box(key), 0);
            }),
            Case::new("naive byte loop (in place)", size as u64, 0, || {
                naive_mask(black_box(&mut b[..]), black_box(key));
            }),
            Case::new("extend_from_slice (into Vec)", size as u64, 0, || {
                let v = black_box(&mut vec_plain);
                v.clear();
                v.extend_from_slice(black_box(src_plain));
            }),
            Case::new(
                "extend_masked (copy+unmask into Vec)",
                size as u64,
                0,
                || {
                    let v = black_box(&mut vec_masked);
                    v.clear();
                    extend_masked(v, black_box(src_masked), black_box(key), 0);
                },
            ),
            Case::new("extend_masked, source 6 bytes off", size as u64, 0, || {
                let v = black_box(&mut vec_odd);
                v.clear();
                extend_masked(v, black_box(src_odd), black_box(key), 0);
            }),
            // What `extend_masked` did before the fused loop: copy, then unmask in place.
            Case::new("copy then apply_mask (two passes)", size as u64, 0, || {
                let v = black_box(&mut vec_two_pass);
                v.clear();
                v.extend_from_slice(black_box(src_two_pass));
                apply_mask(v, black_box(key), 0);
            }),
        ];
        let Some(m) = run_group(&opts, &group, cases) else {
            continue;
        };
        println!("\n### {group}\n");
        println!("| case | MiB/s median | ± (IQR/2) | MiB/s best | × memcpy (median) | × memcpy (best) |");
        println!("|---|---:|---:|---:|---:|---:|");
        for case in &m {
            println!(
                "| {} | {:.0} | {:.1}% | {:.0} | {:.2} | {:.2} |",
                case.name,
                case.mib_per_s(),
                case.spread() * 100.0,
                case.best_mib_per_s(),
                case.ratio_to(&m[0]),
                case.best_ratio_to(&m[0]),
            );
        }
        rows.push(format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            size_name(size),
            m[1].ratio_to(&m[0]),
            m[2].ratio_to(&m[0]),
            m[4].ratio_to(&m[3]),
            m[4].ratio_to(&m[0]),
            m[6].ratio_to(&m[0]),
            m[4].ratio_to(&m[6]),
        ));
    }
    print_summary(&opts, SUMMARY_HEADER, &rows);
}

const SUMMARY_HEADER: &str =
    "\n### mask summary (throughput ratios, median of per-round ratios)\n\n\
    | size | apply_mask / memcpy | naive / memcpy \
    | extend_masked / extend_from_slice | extend_masked / memcpy \
    | two passes / memcpy | extend_masked / two passes |\n\
    |---|---:|---:|---:|---:|---:|---:|";
