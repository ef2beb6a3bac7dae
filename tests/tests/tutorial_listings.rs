//! docs/tutorial.md shows the three facade examples in full; this test fails when a listing
//! and its example file differ, so the tutorial cannot drift from the code that CI builds and
//! runs.

use std::path::Path;

/// The ```rust blocks of a Markdown text, without their fences.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == "```rust" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn every_example_is_shown_verbatim_in_the_tutorial() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tutorial = std::fs::read_to_string(root.join("docs/tutorial.md")).unwrap();
    let blocks = rust_blocks(&tutorial);
    for example in ["chat_server.rs", "chat_client.rs", "framing.rs"] {
        let path = root.join("facade/examples").join(example);
        let code = std::fs::read_to_string(&path).unwrap();
        // The listing is found by the example's first line (its `//! Tutorial N` heading). A
        // long example may be shown in consecutive parts, split at a blank line of the file.
        let first = code.lines().next().unwrap();
        let start = blocks
            .iter()
            .position(|b| b.lines().next() == Some(first))
            .unwrap_or_else(|| panic!("docs/tutorial.md has no listing of {example}"));
        let mut listing = String::new();
        for (i, part) in blocks[start..].iter().enumerate() {
            if i > 0 {
                listing.push('\n');
            }
            listing.push_str(part);
            if listing.len() >= code.len() {
                break;
            }
        }
        if listing.trim_end() != code.trim_end() {
            let line = listing
                .lines()
                .zip(code.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "the length".to_owned(), |i| format!("line {}", i + 1));
            panic!("docs/tutorial.md's listing of {example} differs from the file at {line}: copy the file into the tutorial again");
        }
    }
}

#[test]
fn the_block_reader_finds_rust_blocks_only() {
    let markdown = "text\n```rust\nfn a() {}\n```\n```sh\nls\n```\n```rust\nfn b() {}\n```\n";
    assert_eq!(rust_blocks(markdown), ["fn a() {}\n", "fn b() {}\n"]);
}
