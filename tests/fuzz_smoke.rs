//! The fuzz targets of `src/fuzzing.rs` on stable Rust, in every test run: first the committed
//! corpus (`fuzz/corpus/TARGET/`), then random mutations of it (a fixed number per target, from
//! a seed printed on failure). Coverage-guided fuzzing is `cargo +nightly fuzz` (fuzz/README.md).

use std::path::Path;

/// Mutated inputs per target.
const MUTATIONS: usize = 100_000;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes a mutation likes to insert: separators and characters the parsers treat specially.
const INTERESTING: &[u8] = b"%:/?#[]@.=&+-\"',\n\r\t\x00\xff\xc3\xa9*PRI ";

fn mutate(rng: &mut XorShift, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < input.len() => {
                let end = (at + 1 + rng.below(8)).min(input.len());
                input.drain(at..end);
            }
            3 if at < input.len() => {
                let end = (at + 1 + rng.below(16)).min(input.len());
                let chunk = input[at..end].to_vec();
                input.splice(at..at, chunk);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                input.splice(at..at, other[from..].iter().copied());
            }
            _ => input.insert(at, rng.next() as u8),
        }
    }
    input.truncate(16 * 1024);
}

#[test]
fn every_fuzz_target_holds_on_its_corpus_and_on_mutations_of_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    for &(name, target) in snip::fuzzing::TARGETS {
        let dir = root.join(name);
        let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .collect();
        corpus.sort();
        assert!(!corpus.is_empty(), "{name}: empty corpus");
        for input in &corpus {
            target(input);
        }
        let mut rng = XorShift(seed ^ name.len() as u64);
        for _ in 0..MUTATIONS {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &corpus, &mut input);
            let result = std::panic::catch_unwind(|| target(&input));
            if result.is_err() {
                panic!(
                    "fuzz target {name} failed (seed {seed}) on {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}
