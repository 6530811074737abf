//! Tests of the Merkle tree: RFC 9162 proofs, generation in O(log n) reads, strict verification.

use std::cell::Cell;
use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;

const ALGS: [HashAlg; 2] = [HashAlg::Blake3, HashAlg::Sha256];

// ----- A naive reference: RFC 9162 §2.1 written over a slice of leaf hashes. -----

fn naive_split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn naive_mth(alg: HashAlg, leaves: &[Hash]) -> Hash {
    match leaves {
        [] => alg.empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = naive_split(leaves.len());
            alg.node_hash(&naive_mth(alg, &leaves[..k]), &naive_mth(alg, &leaves[k..]))
        }
    }
}

fn naive_path(alg: HashAlg, m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = naive_split(leaves.len());
    if m < k {
        let mut path = naive_path(alg, m, &leaves[..k]);
        path.push(naive_mth(alg, &leaves[k..]));
        path
    } else {
        let mut path = naive_path(alg, m - k, &leaves[k..]);
        path.push(naive_mth(alg, &leaves[..k]));
        path
    }
}

fn naive_subproof(alg: HashAlg, m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b {
            Vec::new()
        } else {
            vec![naive_mth(alg, leaves)]
        };
    }
    let k = naive_split(n);
    if m <= k {
        let mut proof = naive_subproof(alg, m, &leaves[..k], b);
        proof.push(naive_mth(alg, &leaves[k..]));
        proof
    } else {
        let mut proof = naive_subproof(alg, m - k, &leaves[k..], false);
        proof.push(naive_mth(alg, &leaves[..k]));
        proof
    }
}

// ----- Sources. -----

fn tree_of(alg: HashAlg, n: u64) -> (MemoryTree, Vec<Hash>) {
    let mut tree = MemoryTree::new(alg);
    let mut leaves = Vec::new();
    for i in 0..n {
        let entry = format!("entry {i}");
        assert_eq!(tree.push(entry.as_bytes()), i);
        leaves.push(alg.leaf_hash(entry.as_bytes()));
    }
    (tree, leaves)
}

/// Counts the reads of another source.
struct Counting<'a, S> {
    inner: &'a S,
    reads: Cell<u64>,
}

impl<S: NodeSource> NodeSource for Counting<'_, S> {
    type Error = S::Error;
    fn node(&self, level: u32, index: u64) -> Result<Hash, S::Error> {
        self.reads.set(self.reads.get() + 1);
        self.inner.node(level, index)
    }
}

/// A consistent tree of any size up to u64::MAX whose leaves all have the same hash, so
/// node (l, i) only depends on l.
struct Uniform {
    levels: Vec<Hash>,
}

impl Uniform {
    fn new(alg: HashAlg) -> Self {
        let mut levels = vec![alg.leaf_hash(b"same")];
        for l in 1..64 {
            let below = levels[l - 1];
            levels.push(alg.node_hash(&below, &below));
        }
        Self { levels }
    }
}

impl NodeSource for Uniform {
    type Error = Infallible;
    fn node(&self, level: u32, _index: u64) -> Result<Hash, Infallible> {
        Ok(self.levels[level as usize])
    }
}

/// A source that always fails.
struct Broken;

#[derive(Debug, PartialEq, Eq)]
struct BrokenError;

impl fmt::Display for BrokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broken")
    }
}

impl std::error::Error for BrokenError {}

impl NodeSource for Broken {
    type Error = BrokenError;
    fn node(&self, _level: u32, _index: u64) -> Result<Hash, BrokenError> {
        Err(BrokenError)
    }
}

fn ok<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}

fn ok_proof<T>(result: Result<T, ProofError<Infallible>>) -> T {
    match result {
        Ok(value) => value,
        Err(ProofError::Source(never)) => match never {},
        Err(error @ ProofError::OutOfRange { .. }) => panic!("{error}"),
    }
}

/// ceil(log2(n)) for n >= 1.
fn depth(n: u64) -> u64 {
    u64::from(u64::BITS - (n - 1).leading_zeros())
}

const EMPTY: [Hash; 0] = [];

// ----- Generation against the naive reference, and verification of what we generate. -----

#[test]
fn generation_matches_naive_rfc_for_every_size_up_to_70() {
    for alg in ALGS {
        let (tree, leaves) = tree_of(alg, 70);
        for n in 1..=70_u64 {
            let prefix = &leaves[..n as usize];
            let counting = Counting {
                inner: &tree,
                reads: Cell::new(0),
            };
            let size_root = ok(root(alg, &counting, n));
            assert_eq!(size_root, naive_mth(alg, prefix), "{alg} root of {n}");
            assert_eq!(
                counting.reads.get(),
                u64::from(n.count_ones()),
                "{alg} root reads"
            );

            for m in 0..n {
                counting.reads.set(0);
                let proof = ok_proof(inclusion_proof(alg, &counting, m, n));
                assert_eq!(
                    proof,
                    naive_path(alg, m as usize, prefix),
                    "{alg} PATH({m}, D[{n}])"
                );
                assert!(counting.reads.get() <= 2 * depth(n), "{alg} reads {m}/{n}");
                verify_inclusion(alg, m, n, &leaves[m as usize], &proof, &size_root)
                    .unwrap_or_else(|e| panic!("{alg} inclusion {m}/{n}: {e}"));
            }

            for m in 1..=n {
                counting.reads.set(0);
                let proof = ok_proof(consistency_proof(alg, &counting, m, n));
                assert_eq!(
                    proof,
                    naive_subproof(alg, m as usize, prefix, true),
                    "{alg} PROOF({m}, D[{n}])"
                );
                assert!(counting.reads.get() <= 2 * depth(n), "{alg} reads {m}->{n}");
                let old_root = naive_mth(alg, &leaves[..m as usize]);
                verify_consistency(alg, m, n, &old_root, &size_root, &proof)
                    .unwrap_or_else(|e| panic!("{alg} consistency {m}->{n}: {e}"));
            }
        }
        assert_eq!(tree.root(), naive_mth(alg, &leaves));
        assert_eq!(tree.len(), 70);
        assert!(!tree.is_empty());
    }
}

#[test]
fn memory_tree_nodes_are_the_complete_subtrees() {
    for alg in ALGS {
        let (tree, leaves) = tree_of(alg, 37);
        for level in 0..6_u32 {
            let width = 1_usize << level;
            for index in 0..leaves.len() / width {
                let start = index * width;
                assert_eq!(
                    ok(tree.node(level, index as u64)),
                    naive_mth(alg, &leaves[start..start + width])
                );
            }
            // The first node that is not complete yet reads as zeros.
            let missing = (leaves.len() / width) as u64;
            assert_eq!(ok(tree.node(level, missing)), [0; 32]);
        }
        assert_eq!(ok(tree.node(40, 0)), [0; 32]);
        assert_eq!(ok(tree.node(0, u64::MAX)), [0; 32]);
        assert_eq!(tree.alg(), alg);
    }
    let empty = MemoryTree::new(HashAlg::Blake3);
    assert!(empty.is_empty());
    assert_eq!(empty.root(), HashAlg::Blake3.empty_root());
}

#[test]
fn subtree_root_of_any_range_is_the_mth_of_that_range() {
    let alg = HashAlg::Sha256;
    let (tree, leaves) = tree_of(alg, 20);
    for start in 0..=20_u64 {
        for end in start..=20_u64 {
            let want = naive_mth(alg, &leaves[start as usize..end as usize]);
            assert_eq!(
                ok(subtree_root(alg, &tree, start, end)),
                want,
                "[{start},{end})"
            );
        }
    }
    // An inverted range is empty.
    assert_eq!(ok(subtree_root(alg, &tree, 5, 2)), alg.empty_root());
    assert_eq!(ok(root(alg, &tree, 0)), alg.empty_root());
}

// ----- The frontier. -----

#[test]
fn frontier_follows_the_memory_tree() {
    for alg in ALGS {
        let (tree, leaves) = tree_of(alg, 300);
        let mut frontier = Frontier::new(alg);
        assert_eq!(frontier.root(), alg.empty_root());
        assert_eq!(frontier.alg(), alg);
        for (i, leaf) in leaves.iter().enumerate() {
            let i = i as u64;
            let done = frontier.push(*leaf);
            // The leaf and one node per trailing one bit of its index, bottom up.
            assert_eq!(done.len() as u32, i.trailing_ones() + 1, "push {i}");
            for (k, &(level, index, hash)) in done.iter().enumerate() {
                assert_eq!(level, k as u32);
                assert_eq!(index, i >> level);
                assert_eq!(hash, ok(tree.node(level, index)), "node ({level}, {index})");
            }
            let size = i + 1;
            assert_eq!(frontier.size(), size);
            assert_eq!(
                frontier.root(),
                ok(root(alg, &tree, size)),
                "root at {size}"
            );
            assert_eq!(frontier.hashes.len() as u32, size.count_ones());
        }
    }
}

#[test]
fn frontier_from_source_round_trips() {
    for alg in ALGS {
        let (tree, leaves) = tree_of(alg, 130);
        let mut pushed = Frontier::new(alg);
        for size in 0..=130_u64 {
            let counting = Counting {
                inner: &tree,
                reads: Cell::new(0),
            };
            let read = ok(Frontier::from_source(alg, &counting, size));
            assert_eq!(read, pushed, "size {size}");
            assert_eq!(counting.reads.get(), u64::from(size.count_ones()));
            // Continuing from the rebuilt frontier gives the same nodes and roots.
            if let Some(leaf) = leaves.get(size as usize) {
                let mut resumed = read.clone();
                assert_eq!(resumed.push(*leaf), pushed.push(*leaf));
                assert_eq!(resumed, pushed);
                assert_eq!(resumed.root(), ok(root(alg, &tree, size + 1)));
            }
        }
    }
}

#[test]
fn frontier_at_u64_max_is_full_and_does_not_panic() {
    let alg = HashAlg::Blake3;
    let uniform = Uniform::new(alg);
    let mut frontier = ok(Frontier::from_source(alg, &uniform, u64::MAX));
    assert_eq!(frontier.hashes.len(), 64);
    assert_eq!(frontier.root(), ok(root(alg, &uniform, u64::MAX)));
    let before = frontier.clone();
    assert!(frontier.push(alg.leaf_hash(b"same")).is_empty());
    assert_eq!(frontier, before);

    // One below full: the last push merges 63 subtrees.
    let mut frontier = ok(Frontier::from_source(alg, &uniform, u64::MAX - 1));
    let done = frontier.push(alg.leaf_hash(b"same"));
    assert_eq!(done.len(), 1);
    assert_eq!(frontier.size(), u64::MAX);
    let mut frontier = ok(Frontier::from_source(alg, &uniform, (1 << 63) - 1));
    let done = frontier.push(alg.leaf_hash(b"same"));
    assert_eq!(done.len(), 64);
    assert_eq!(done.last().map(|d| (d.0, d.1)), Some((63, 0)));
    assert_eq!(frontier.root(), uniform.levels[63]);
}

// ----- Huge sizes. -----

#[test]
fn proofs_in_huge_trees_verify_with_few_reads() {
    let alg = HashAlg::Sha256;
    let uniform = Uniform::new(alg);
    let leaf = uniform.levels[0];
    let sizes = [
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
        (1 << 63) + 1,
        (1 << 63) - 1,
        0xdead_beef_cafe_f00d,
    ];
    for size in sizes {
        let size_root = ok(root(alg, &uniform, size));
        for index in [0, 1, size / 2, size - 2, size - 1] {
            let counting = Counting {
                inner: &uniform,
                reads: Cell::new(0),
            };
            let proof = ok_proof(inclusion_proof(alg, &counting, index, size));
            assert!(counting.reads.get() <= 128, "{index}/{size}");
            verify_inclusion(alg, index, size, &leaf, &proof, &size_root)
                .unwrap_or_else(|e| panic!("{index}/{size}: {e}"));
        }
        for size1 in [1, 2, 3, size / 3, size - 1, size] {
            let counting = Counting {
                inner: &uniform,
                reads: Cell::new(0),
            };
            let proof = ok_proof(consistency_proof(alg, &counting, size1, size));
            assert!(counting.reads.get() <= 128, "{size1}->{size}");
            let root1 = ok(root(alg, &uniform, size1));
            verify_consistency(alg, size1, size, &root1, &size_root, &proof)
                .unwrap_or_else(|e| panic!("{size1}->{size}: {e}"));
        }
    }
}

#[test]
fn verification_never_panics_at_extreme_sizes() {
    let h = [7_u8; 32];
    let sizes = [
        0,
        1,
        2,
        3,
        (1 << 63) - 1,
        1 << 63,
        (1 << 63) + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    for alg in ALGS {
        for len in [0_usize, 1, 2, 63, 64, 65, 200] {
            let proof = vec![h; len];
            for &size in &sizes {
                for &index in &sizes {
                    let _ = verify_inclusion(alg, index, size, &h, &proof, &h);
                    let _ = verify_consistency(alg, index, size, &h, &h, &proof);
                }
            }
        }
    }
}

// ----- Every error variant. -----

#[test]
fn proof_errors() {
    let alg = HashAlg::Blake3;
    let (tree, _) = tree_of(alg, 8);
    let out_of_range = |kind, first, second| ProofError::OutOfRange {
        kind,
        first,
        second,
    };
    assert_eq!(
        inclusion_proof(alg, &tree, 8, 8),
        Err(out_of_range(ProofKind::Inclusion, 8, 8))
    );
    assert_eq!(
        inclusion_proof(alg, &tree, 0, 0),
        Err(out_of_range(ProofKind::Inclusion, 0, 0))
    );
    assert_eq!(
        consistency_proof(alg, &tree, 0, 5),
        Err(out_of_range(ProofKind::Consistency, 0, 5))
    );
    assert_eq!(
        consistency_proof(alg, &tree, 0, 0),
        Err(out_of_range(ProofKind::Consistency, 0, 0))
    );
    assert_eq!(
        consistency_proof(alg, &tree, 6, 5),
        Err(out_of_range(ProofKind::Consistency, 6, 5))
    );
    assert_eq!(consistency_proof(alg, &tree, 5, 5), Ok(Vec::new()));
    assert_eq!(inclusion_proof(alg, &tree, 0, 1), Ok(Vec::new()));

    assert_eq!(
        inclusion_proof(alg, &Broken, 3, 8),
        Err(ProofError::Source(BrokenError))
    );
    assert_eq!(
        consistency_proof(alg, &Broken, 3, 8),
        Err(ProofError::Source(BrokenError))
    );
    assert_eq!(root(alg, &Broken, 3), Err(BrokenError));
    assert_eq!(Frontier::from_source(alg, &Broken, 3), Err(BrokenError));
    // The empty tree needs no read.
    assert_eq!(root(alg, &Broken, 0), Ok(alg.empty_root()));

    let message = out_of_range(ProofKind::Inclusion, 8, 8).to_string();
    assert!(
        message.contains("leaf 8") && message.contains("8 leaves"),
        "{message}"
    );
    let message = ProofError::<BrokenError>::Source(BrokenError).to_string();
    assert_eq!(message, "reading a tree node: broken");
}

#[test]
fn verify_inclusion_errors() {
    let alg = HashAlg::Sha256;
    let (tree, leaves) = tree_of(alg, 7);
    let size_root = tree.root();
    let proof = ok_proof(inclusion_proof(alg, &tree, 2, 7));
    let leaf = leaves[2];
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaf, &proof, &size_root),
        Ok(())
    );

    let wrong_length = |which, len| Err(VerifyError::WrongHashLength { which, len });
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaf[..31], &proof, &size_root),
        wrong_length(HashRole::Leaf, 31)
    );
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaf, &proof, &[0; 33]),
        wrong_length(HashRole::Root, 33)
    );
    let mut bad: Vec<Vec<u8>> = proof.iter().map(|h| h.to_vec()).collect();
    bad[1].push(0);
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaf, &bad, &size_root),
        wrong_length(HashRole::Proof(1), 33)
    );
    bad[1].clear();
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaf, &bad, &size_root),
        wrong_length(HashRole::Proof(1), 0)
    );
    assert_eq!(
        verify_inclusion(alg, 7, 7, &leaf, &proof, &size_root),
        Err(VerifyError::IndexOutOfRange { index: 7, size: 7 })
    );
    assert_eq!(
        verify_inclusion(alg, 0, 0, &leaf, &EMPTY, &alg.empty_root()),
        Err(VerifyError::IndexOutOfRange { index: 0, size: 0 })
    );
    let mut long = proof.clone();
    long.push(leaf);
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaf, &long, &size_root),
        Err(VerifyError::ProofTooLong { len: 4 })
    );
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaf, &proof[..2], &size_root),
        Err(VerifyError::ProofTooShort { len: 2 })
    );
    assert_eq!(
        verify_inclusion(alg, 2, 7, &leaves[3], &proof, &size_root),
        Err(VerifyError::RootMismatch)
    );
    // Size 1: the leaf is the root, and the proof is empty.
    assert_eq!(
        verify_inclusion(alg, 0, 1, &leaves[0], &EMPTY, &leaves[0]),
        Ok(())
    );
    assert_eq!(
        verify_inclusion(alg, 0, 1, &leaves[0], &[leaves[1]], &leaves[0]),
        Err(VerifyError::ProofTooLong { len: 1 })
    );
    // The other hash function gives other hashes.
    assert_eq!(
        verify_inclusion(HashAlg::Blake3, 2, 7, &leaf, &proof, &size_root),
        Err(VerifyError::RootMismatch)
    );
}

#[test]
fn verify_consistency_errors() {
    let alg = HashAlg::Blake3;
    let (tree, _) = tree_of(alg, 7);
    let root3 = ok(root(alg, &tree, 3));
    let root4 = ok(root(alg, &tree, 4));
    let root7 = tree.root();
    let proof = ok_proof(consistency_proof(alg, &tree, 3, 7));
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3, &root7, &proof),
        Ok(())
    );

    let wrong_length = |which, len| Err(VerifyError::WrongHashLength { which, len });
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3[..1], &root7, &proof),
        wrong_length(HashRole::Root1, 1)
    );
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3, b"", &proof),
        wrong_length(HashRole::Root2, 0)
    );
    let mut bad: Vec<Vec<u8>> = proof.iter().map(|h| h.to_vec()).collect();
    bad[0].pop();
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3, &root7, &bad),
        wrong_length(HashRole::Proof(0), 31)
    );
    assert_eq!(
        verify_consistency(alg, 7, 3, &root7, &root3, &proof),
        Err(VerifyError::Size1GreaterThanSize2 { size1: 7, size2: 3 })
    );
    assert_eq!(
        verify_consistency(alg, 0, 7, &alg.empty_root(), &root7, &EMPTY),
        Err(VerifyError::EmptyFirstTree)
    );
    assert_eq!(
        verify_consistency(alg, 0, 0, &alg.empty_root(), &alg.empty_root(), &EMPTY),
        Err(VerifyError::EmptyFirstTree)
    );
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3, &root7, &EMPTY),
        Err(VerifyError::EmptyProof { size1: 3, size2: 7 })
    );
    assert_eq!(
        verify_consistency(alg, 7, 7, &root7, &root7, &EMPTY),
        Ok(())
    );
    assert_eq!(
        verify_consistency(alg, 7, 7, &root7, &root7, &[root7]),
        Err(VerifyError::NonEmptyProof { size: 7, len: 1 })
    );
    assert_eq!(
        verify_consistency(alg, 7, 7, &root3, &root7, &EMPTY),
        Err(VerifyError::RootsDiffer { size: 7 })
    );
    let mut long = proof.clone();
    long.push(root3);
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3, &root7, &long),
        Err(VerifyError::ProofTooLong {
            len: proof.len() + 1
        })
    );
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3, &root7, &proof[..proof.len() - 1]),
        Err(VerifyError::ProofTooShort {
            len: proof.len() - 1
        })
    );
    assert_eq!(
        verify_consistency(alg, 3, 7, &root4, &root7, &proof),
        Err(VerifyError::Root1Mismatch)
    );
    assert_eq!(
        verify_consistency(alg, 3, 7, &root3, &root4, &proof),
        Err(VerifyError::Root2Mismatch)
    );
    // size1 a power of two: root1 is the first value of the path, not part of the proof.
    let proof4 = ok_proof(consistency_proof(alg, &tree, 4, 7));
    assert_eq!(
        verify_consistency(alg, 4, 7, &root4, &root7, &proof4),
        Ok(())
    );
    let mut with_root1 = vec![root4];
    with_root1.extend_from_slice(&proof4);
    assert!(verify_consistency(alg, 4, 7, &root4, &root7, &with_root1).is_err());
    // A wrong root1 is then the seed of both fr and sr: fr is never hashed again (fn is 0),
    // so it is sr that comes out wrong.
    assert_eq!(
        verify_consistency(alg, 4, 7, &root3, &root7, &proof4),
        Err(VerifyError::Root2Mismatch)
    );
}

#[test]
fn error_messages_are_one_line_and_specific() {
    let all = [
        VerifyError::WrongHashLength {
            which: HashRole::Proof(3),
            len: 31,
        },
        VerifyError::IndexOutOfRange { index: 9, size: 9 },
        VerifyError::Size1GreaterThanSize2 { size1: 4, size2: 2 },
        VerifyError::EmptyFirstTree,
        VerifyError::EmptyProof { size1: 1, size2: 2 },
        VerifyError::NonEmptyProof { size: 3, len: 1 },
        VerifyError::ProofTooLong { len: 5 },
        VerifyError::ProofTooShort { len: 1 },
        VerifyError::RootMismatch,
        VerifyError::Root1Mismatch,
        VerifyError::Root2Mismatch,
        VerifyError::RootsDiffer { size: 3 },
    ];
    let mut seen = std::collections::HashSet::new();
    for error in &all {
        let message = error.to_string();
        assert!(!message.contains('\n') && !message.is_empty(), "{error:?}");
        assert!(seen.insert(message), "duplicate message for {error:?}");
    }
    assert_eq!(all[0].to_string(), "proof hash 3 is 31 bytes long, not 32");
    for (role, text) in [
        (HashRole::Leaf, "the leaf hash"),
        (HashRole::Root, "the root hash"),
        (HashRole::Root1, "root1"),
        (HashRole::Root2, "root2"),
    ] {
        assert_eq!(role.to_string(), text);
    }
}

/// RFC 9162 binds the tree size only through the proof's shape: for leaf 0, sizes 3 and 4
/// give proofs of the same shape, so a size-3 proof also "verifies" as size 4 against the
/// size-3 root. This is the RFC's algorithm, not a bug of ours: a checkpoint signs the size
/// with the root, and against the size-4 root the proof fails.
#[test]
fn tree_size_is_bound_by_the_root_not_by_the_proof() {
    let alg = HashAlg::Sha256;
    let (tree, leaves) = tree_of(alg, 4);
    let root3 = ok(root(alg, &tree, 3));
    let proof = ok_proof(inclusion_proof(alg, &tree, 0, 3));
    assert_eq!(
        verify_inclusion(alg, 0, 3, &leaves[0], &proof, &root3),
        Ok(())
    );
    assert_eq!(
        verify_inclusion(alg, 0, 4, &leaves[0], &proof, &root3),
        Ok(())
    );
    assert_eq!(
        verify_inclusion(alg, 0, 4, &leaves[0], &proof, &tree.root()),
        Err(VerifyError::RootMismatch)
    );
}

/// Every single-bit change of every input of one inclusion and one consistency proof fails.
#[test]
fn every_bit_flip_fails() {
    for alg in ALGS {
        let (tree, leaves) = tree_of(alg, 11);
        let size_root = tree.root();
        let proof = ok_proof(inclusion_proof(alg, &tree, 6, 11));
        let leaf = leaves[6];
        for bit in 0..256 {
            let flip = |h: &Hash| {
                let mut h = *h;
                h[bit / 8] ^= 1 << (bit % 8);
                h
            };
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i]);
                assert_eq!(
                    verify_inclusion(alg, 6, 11, &leaf, &bad, &size_root),
                    Err(VerifyError::RootMismatch)
                );
            }
            assert!(verify_inclusion(alg, 6, 11, &flip(&leaf), &proof, &size_root).is_err());
            assert!(verify_inclusion(alg, 6, 11, &leaf, &proof, &flip(&size_root)).is_err());
        }

        let root5 = ok(root(alg, &tree, 5));
        let proof = ok_proof(consistency_proof(alg, &tree, 5, 11));
        assert_eq!(
            verify_consistency(alg, 5, 11, &root5, &size_root, &proof),
            Ok(())
        );
        for bit in 0..256 {
            let flip = |h: &Hash| {
                let mut h = *h;
                h[bit / 8] ^= 1 << (bit % 8);
                h
            };
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flip(&bad[i]);
                assert!(verify_consistency(alg, 5, 11, &root5, &size_root, &bad).is_err());
            }
            assert!(verify_consistency(alg, 5, 11, &flip(&root5), &size_root, &proof).is_err());
            assert!(verify_consistency(alg, 5, 11, &root5, &flip(&size_root), &proof).is_err());
        }
    }
}

// ----- Property tests over random trees of up to 5000 leaves. -----

const MAX_SIZE: u64 = 5000;

/// One tree per hash function with one more leaf than the largest size tested, so that
/// `size + 1` always has a root.
fn big_tree(alg: HashAlg) -> &'static MemoryTree {
    static BLAKE3: OnceLock<MemoryTree> = OnceLock::new();
    static SHA256: OnceLock<MemoryTree> = OnceLock::new();
    let cell = match alg {
        HashAlg::Blake3 => &BLAKE3,
        HashAlg::Sha256 => &SHA256,
    };
    cell.get_or_init(|| tree_of(alg, MAX_SIZE + 1).0)
}

fn any_alg() -> impl Strategy<Value = HashAlg> {
    prop_oneof![Just(HashAlg::Blake3), Just(HashAlg::Sha256)]
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut hash = *hash;
    hash[(bit / 8) % 32] ^= 1 << (bit % 8);
    hash
}

// 256 cases each by default; PROPTEST_CASES=N runs more.
proptest! {
    #[test]
    fn inclusion_proofs_verify_and_mutations_fail(
        alg in any_alg(),
        size in 1..=MAX_SIZE,
        index_seed in any::<u64>(),
        bits in proptest::collection::vec(0..256_usize, 32),
        extra in any::<[u8; 32]>(),
        position in any::<proptest::sample::Index>(),
    ) {
        let tree = big_tree(alg);
        let index = index_seed % size;
        let leaf = ok(tree.node(0, index));
        let size_root = ok(root(alg, tree, size));
        let proof = ok_proof(inclusion_proof(alg, tree, index, size));
        prop_assert_eq!(verify_inclusion(alg, index, size, &leaf, &proof, &size_root), Ok(()));

        // One bit of any proof hash, of the leaf, of the root.
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bits[i]);
            prop_assert_eq!(
                verify_inclusion(alg, index, size, &leaf, &bad, &size_root),
                Err(VerifyError::RootMismatch)
            );
        }
        prop_assert_eq!(
            verify_inclusion(alg, index, size, &flip(&leaf, bits[30]), &proof, &size_root),
            Err(VerifyError::RootMismatch)
        );
        prop_assert_eq!(
            verify_inclusion(alg, index, size, &leaf, &proof, &flip(&size_root, bits[31])),
            Err(VerifyError::RootMismatch)
        );

        // Another index in the same tree.
        if index + 1 < size {
            prop_assert!(verify_inclusion(alg, index + 1, size, &leaf, &proof, &size_root).is_err());
        }
        if index > 0 {
            prop_assert!(verify_inclusion(alg, index - 1, size, &leaf, &proof, &size_root).is_err());
        }
        // Another size, with that size's own root (see
        // tree_size_is_bound_by_the_root_not_by_the_proof for why the root must change too).
        let bigger = size + 1;
        let bigger_root = ok(root(alg, tree, bigger));
        prop_assert!(verify_inclusion(alg, index, bigger, &leaf, &proof, &bigger_root).is_err());
        if size - 1 > index {
            let smaller_root = ok(root(alg, tree, size - 1));
            prop_assert!(
                verify_inclusion(alg, index, size - 1, &leaf, &proof, &smaller_root).is_err()
            );
        }

        // One hash more, anywhere, or one less, anywhere.
        let mut longer = proof.clone();
        longer.insert(position.index(proof.len() + 1), extra);
        prop_assert_eq!(
            verify_inclusion(alg, index, size, &leaf, &longer, &size_root),
            Err(VerifyError::ProofTooLong { len: proof.len() + 1 })
        );
        let mut appended = proof.clone();
        appended.push(proof.last().copied().unwrap_or(leaf));
        prop_assert!(verify_inclusion(alg, index, size, &leaf, &appended, &size_root).is_err());
        if !proof.is_empty() {
            let mut shorter = proof.clone();
            shorter.remove(position.index(proof.len()));
            prop_assert_eq!(
                verify_inclusion(alg, index, size, &leaf, &shorter, &size_root),
                Err(VerifyError::ProofTooShort { len: proof.len() - 1 })
            );
        }
    }

    #[test]
    fn consistency_proofs_verify_and_mutations_fail(
        alg in any_alg(),
        size2 in 1..=MAX_SIZE,
        size1_seed in any::<u64>(),
        bits in proptest::collection::vec(0..256_usize, 32),
        extra in any::<[u8; 32]>(),
        position in any::<proptest::sample::Index>(),
    ) {
        let tree = big_tree(alg);
        let size1 = 1 + size1_seed % size2;
        let root1 = ok(root(alg, tree, size1));
        let root2 = ok(root(alg, tree, size2));
        let proof = ok_proof(consistency_proof(alg, tree, size1, size2));
        prop_assert_eq!(verify_consistency(alg, size1, size2, &root1, &root2, &proof), Ok(()));

        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bits[i]);
            prop_assert!(verify_consistency(alg, size1, size2, &root1, &root2, &bad).is_err());
        }
        prop_assert!(
            verify_consistency(alg, size1, size2, &flip(&root1, bits[30]), &root2, &proof)
                .is_err()
        );
        prop_assert!(
            verify_consistency(alg, size1, size2, &root1, &flip(&root2, bits[31]), &proof)
                .is_err()
        );

        // Other sizes, each with its own root.
        let mut others = vec![(size1 + 1, size2), (size1, size2 + 1)];
        if size1 > 1 {
            others.push((size1 - 1, size2));
        }
        if size2 > size1 {
            others.push((size1, size2 - 1));
        }
        for (s1, s2) in others {
            let (r1, r2) = (ok(root(alg, tree, s1)), ok(root(alg, tree, s2)));
            prop_assert!(
                verify_consistency(alg, s1, s2, &r1, &r2, &proof).is_err(),
                "{}->{} proof accepted as {}->{}", size1, size2, s1, s2
            );
        }

        let mut longer = proof.clone();
        longer.insert(position.index(proof.len() + 1), extra);
        let longer_result = verify_consistency(alg, size1, size2, &root1, &root2, &longer);
        if size1 == size2 {
            prop_assert_eq!(
                longer_result,
                Err(VerifyError::NonEmptyProof { size: size1, len: 1 })
            );
        } else {
            prop_assert_eq!(
                longer_result,
                Err(VerifyError::ProofTooLong { len: proof.len() + 1 })
            );
        }
        let mut appended = proof.clone();
        appended.push(proof.last().copied().unwrap_or(root1));
        prop_assert!(verify_consistency(alg, size1, size2, &root1, &root2, &appended).is_err());
        if !proof.is_empty() {
            let mut shorter = proof.clone();
            shorter.remove(position.index(proof.len()));
            let want = if shorter.is_empty() {
                VerifyError::EmptyProof { size1, size2 }
            } else {
                VerifyError::ProofTooShort { len: proof.len() - 1 }
            };
            prop_assert_eq!(
                verify_consistency(alg, size1, size2, &root1, &root2, &shorter),
                Err(want)
            );
        }
    }
}
