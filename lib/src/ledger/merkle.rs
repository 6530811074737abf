//! The ledger's Merkle tree, as RFC 9162 (Certificate Transparency 2.0) §2.1 defines it.
//!
//! # The tree
//!
//! The ledger is a list of entries `D[n] = {d(0), …, d(n-1)}`. Its Merkle Tree Hash (§2.1.1) is
//!
//! ```text
//! MTH({})       = HASH()
//! MTH({d(0)})   = HASH(0x00 || d(0))                         (a leaf hash)
//! MTH(D[n])     = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k = largest power of two < n
//! ```
//!
//! with `HASH` the ledger's [`HashAlg`] (BLAKE3 by default, SHA-256 on request; both give 32
//! bytes). Because the split is always at the largest power of two, the left part of every split
//! is a *complete* subtree of `2^l` leaves starting at a multiple of `2^l`, and only the right edge
//! of the tree is ragged. Such a complete, aligned subtree is a node `(level l, index i)`: the
//! hash of leaves `[i·2^l, (i+1)·2^l)`. Level 0 holds the leaf hashes. A node never changes once
//! its last leaf is appended, so an append-only store can write it once and keep it.
//!
//! # Why a [`NodeSource`]
//!
//! Proof generation and roots only ever read stored nodes through the [`NodeSource`] trait. The
//! RFC's recursive definitions (PATH in §2.1.3.1, PROOF/SUBPROOF in §2.1.4.1) need `MTH(D[a:b])`
//! of some ranges; [`subtree_root`] computes it by reading one node when `[a, b)` is a complete
//! aligned range and otherwise splitting at the largest power of two (the left part is then
//! complete: one read) and recursing on the right part. Along a proof's path at most one range
//! is ragged (the right edge), so an inclusion or consistency proof costs O(log n) node reads
//! (at most about 2·64) and a root costs one read per set bit of the size; nothing ever loads
//! the whole tree. The on-disk store implements `NodeSource` over its node files; [`MemoryTree`]
//! implements it in memory for tests, benchmarks and the offline verifier.
//!
//! # The frontier
//!
//! [`Frontier`] (a "compact range") is the right edge of a tree: the roots of the complete
//! subtrees that make up `D[0:n]`, one per set bit of `n`, so at most 64 hashes. It is enough to
//! compute the root and to append: appending a leaf works like a binary increment, merging equal
//! sized subtrees, and reports every node it completed so the store can write them. It can be
//! rebuilt after a restart from the store with [`Frontier::from_source`] in at most 64 reads.
//!
//! # Verification
//!
//! [`verify_inclusion`] and [`verify_consistency`] implement the iterative algorithms of
//! §2.1.3.2 and §2.1.4.2 literally and strictly: every hash must be exactly 32 bytes, and a proof
//! with one hash too many or too few is rejected. They take raw byte slices so that malformed
//! input from an auditor's files reaches them as is, and never panic, whatever the sizes.
//!
//! # Corner cases we decided
//!
//! - A consistency proof is defined by RFC 9162 §2.1.4.1 for `0 < size1 < size2`. We also accept
//!   `size1 == size2 > 0`: the proof is empty, and verification checks that the two roots are
//!   equal. A consistency proof *from* size 0 is refused on both sides (generation returns
//!   [`ProofError::OutOfRange`], verification [`VerifyError::EmptyFirstTree`]): every tree
//!   extends the empty one, so such a proof would prove nothing, and a verifier that accepted it
//!   would accept any `root2` without checking it.
//! - An inclusion proof needs `index < size` (§2.1.3.2 step 1); there is none in an empty tree.

use std::convert::Infallible;
use std::fmt;

use super::{Hash, HashAlg};

/// Hashes of complete, aligned subtrees: `node(level, index)` is MTH of leaves
/// `[index << level, (index + 1) << level)`. Level 0 is the leaf hashes.
///
/// The functions of this module only ask for nodes that are complete in the tree size they are
/// given, so a size beyond what the source holds is the caller's mistake. A store should then
/// fail (as it does on an I/O error) rather than invent a hash; [`MemoryTree`], whose error is
/// `Infallible`, reads such nodes as 32 zero bytes, which yields proofs that do not verify.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error;

    /// The hash of the complete subtree of `2^level` leaves starting at leaf `index << level`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The largest power of two strictly below `n` (RFC 9162 §2.1.1's `k`), for `n >= 2`; 0 for
/// smaller `n`, which callers never pass.
fn split_point(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    // n - 1 >= 1, so its highest set bit is at u64::BITS - 1 - leading_zeros, in 0..=63.
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])`, RFC 9162 §2.1.1, read from `src`.
///
/// A complete, aligned range (`end - start == 2^l` and `start` a multiple of `2^l`) is one node
/// read. Otherwise the range splits at `start + k`, `k` the largest power of two below
/// `end - start`, exactly as the MTH definition does, and both halves are computed the same
/// way. When `start` is a multiple of the power of two at or above `end - start` (always the
/// case inside the RFC's PATH and SUBPROOF recursions, and for `start == 0`), the left half is
/// complete and aligned, so this costs one read per set bit of `end - start`. For other
/// (unaligned) ranges it is still correct but may read up to one node per leaf.
///
/// An empty range (`start >= end`) gives the hash of the empty tree.
pub fn subtree_root<S: NodeSource>(
    alg: HashAlg,
    src: &S,
    start: u64,
    end: u64,
) -> Result<Hash, S::Error> {
    if start >= end {
        return Ok(alg.empty_root());
    }
    let n = end - start;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        if start.is_multiple_of(n) {
            return src.node(level, start >> level);
        }
    }
    // n >= 2 here: a single leaf is always a complete, aligned range.
    let mid = start + split_point(n);
    let left = subtree_root(alg, src, start, mid)?;
    let right = subtree_root(alg, src, mid, end)?;
    Ok(alg.node_hash(&left, &right))
}

/// The Merkle Tree Hash of the first `size` leaves (RFC 9162 §2.1.1); the empty tree's hash
/// ([`HashAlg::empty_root`]) for size 0. One node read per set bit of `size`.
pub fn root<S: NodeSource>(alg: HashAlg, src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(alg.empty_root());
    }
    subtree_root(alg, src, 0, size)
}

/// Which proof an [`ProofError::OutOfRange`] was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProofKind {
    /// An inclusion proof: `first` is the leaf index, `second` the tree size.
    Inclusion,
    /// A consistency proof: `first` is size1, `second` size2.
    Consistency,
}

fn out_of_range_message(kind: &ProofKind, first: &u64, second: &u64) -> String {
    match kind {
        ProofKind::Inclusion => format!(
            "no inclusion proof for leaf {first} in a tree of {second} leaves (RFC 9162 needs \
             index < size)"
        ),
        ProofKind::Consistency => format!(
            "no consistency proof from size {first} to size {second} (RFC 9162 needs \
             0 < size1 <= size2)"
        ),
    }
}

/// Why a proof could not be generated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError<E> {
    /// The node source failed to give a node.
    #[error("reading a tree node: {0}")]
    Source(#[source] E),
    /// The index or sizes asked for have no proof: an inclusion proof needs `index < size`, a
    /// consistency proof `0 < size1 <= size2` (see the module documentation for `size1 == 0`).
    #[error("{}", out_of_range_message(.kind, .first, .second))]
    OutOfRange {
        /// The proof asked for.
        kind: ProofKind,
        /// The leaf index (inclusion) or size1 (consistency).
        first: u64,
        /// The tree size (inclusion) or size2 (consistency).
        second: u64,
    },
}

/// RFC 9162 §2.1.3.1: the inclusion proof (audit path) of leaf `index` in the tree of the first
/// `size` leaves, `PATH(index, D[size])`, deepest sibling first.
///
/// The recursion `PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])` (m < k) or
/// `PATH(m - k, D[k:n]) : MTH(D[0:k])` (m >= k), ending with `PATH(0, {d(0)}) = {}`, is unrolled
/// top-down: each level contributes the MTH of the half that does not hold `index`, and the
/// list is reversed at the end. O(log size) node reads.
pub fn inclusion_proof<S: NodeSource>(
    alg: HashAlg,
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::OutOfRange {
            kind: ProofKind::Inclusion,
            first: index,
            second: size,
        });
    }
    // The current subtree D[start:end], which always holds `index`.
    let (mut start, mut end) = (0, size);
    let mut path = Vec::new();
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            // m < k: PATH(m, D[0:k]) : MTH(D[k:n])
            path.push(subtree_root(alg, src, mid, end).map_err(ProofError::Source)?);
            end = mid;
        } else {
            // m >= k: PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.push(subtree_root(alg, src, start, mid).map_err(ProofError::Source)?);
            start = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.4.1: the consistency proof between the trees of the first `size1` and the
/// first `size2` leaves, `PROOF(size1, D[size2]) = SUBPROOF(size1, D[size2], true)`.
///
/// `SUBPROOF(m, D[n], b)` is `{}` if `m == n` and `b`, `{MTH(D[n])}` if `m == n` and not `b`,
/// and otherwise, with `k` the largest power of two below `n`, `SUBPROOF(m, D[0:k], b) :
/// MTH(D[k:n])` if `m <= k` or `SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])` if `m > k`. It is
/// unrolled top-down as in [`inclusion_proof`]. O(log size2) node reads.
///
/// RFC 9162 defines the proof for `0 < size1 < size2`; `size1 == size2` gives the empty proof
/// (the `m == n`, `b` case), and `size1 == 0` or `size1 > size2` is
/// [`ProofError::OutOfRange`].
pub fn consistency_proof<S: NodeSource>(
    alg: HashAlg,
    src: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if size1 == 0 || size1 > size2 {
        return Err(ProofError::OutOfRange {
            kind: ProofKind::Consistency,
            first: size1,
            second: size2,
        });
    }
    // The current call SUBPROOF(size1 - start, D[start:end], b); start < size1 <= end holds
    // throughout.
    let (mut start, mut end, mut b) = (0, size2, true);
    let mut proof = Vec::new();
    loop {
        if size1 == end {
            // m == n: {} if b, {MTH(D[n])} otherwise.
            if !b {
                proof.push(subtree_root(alg, src, start, end).map_err(ProofError::Source)?);
            }
            break;
        }
        // m < n, so n >= 2.
        let mid = start + split_point(end - start);
        if size1 <= mid {
            // m <= k: SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.push(subtree_root(alg, src, mid, end).map_err(ProofError::Source)?);
            end = mid;
        } else {
            // m > k: SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.push(subtree_root(alg, src, start, mid).map_err(ProofError::Source)?);
            start = mid;
            b = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Which hash of a verification's input a [`VerifyError::WrongHashLength`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashRole {
    /// The leaf hash of an inclusion proof.
    Leaf,
    /// The root of an inclusion proof.
    Root,
    /// The root of the first (older) tree of a consistency proof.
    Root1,
    /// The root of the second (newer) tree of a consistency proof.
    Root2,
    /// The proof hash at this position (from 0).
    Proof(usize),
}

impl fmt::Display for HashRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leaf => f.write_str("the leaf hash"),
            Self::Root => f.write_str("the root hash"),
            Self::Root1 => f.write_str("root1"),
            Self::Root2 => f.write_str("root2"),
            Self::Proof(i) => write!(f, "proof hash {i}"),
        }
    }
}

/// Why a proof did not verify. Each variant is one reason; the messages are one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A hash is not 32 bytes long.
    #[error("{which} is {len} bytes long, not 32")]
    WrongHashLength {
        /// Which hash.
        which: HashRole,
        /// Its length in bytes.
        len: usize,
    },
    /// Inclusion, RFC 9162 §2.1.3.2 step 1: the leaf index is not below the tree size.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// Consistency: the first tree is larger than the second.
    #[error("the first tree size {size1} is larger than the second tree size {size2}")]
    Size1GreaterThanSize2 {
        /// The first tree size.
        size1: u64,
        /// The second tree size.
        size2: u64,
    },
    /// Consistency from the empty tree: RFC 9162 §2.1.4.1 defines proofs for `0 < size1` only.
    #[error("a consistency proof from the empty tree (size1 = 0) proves nothing and is refused")]
    EmptyFirstTree,
    /// Consistency, RFC 9162 §2.1.4.2 step 1: the proof is empty although `size1 < size2`.
    #[error("the consistency proof is empty, but size {size1} < {size2} needs at least one hash")]
    EmptyProof {
        /// The first tree size.
        size1: u64,
        /// The second tree size.
        size2: u64,
    },
    /// Consistency between equal sizes: the proof must be empty.
    #[error("the tree sizes are equal ({size}), so the proof must be empty, not {len} hashes")]
    NonEmptyProof {
        /// Both tree sizes.
        size: u64,
        /// The number of hashes given.
        len: usize,
    },
    /// RFC 9162 §2.1.3.2 step 4a / §2.1.4.2 step 6a: `sn` reached 0 (the path reached the root)
    /// while proof hashes were left.
    #[error("the proof has too many hashes ({len}): the path reached the root before its end")]
    ProofTooLong {
        /// The number of hashes given.
        len: usize,
    },
    /// RFC 9162 §2.1.3.2 step 5 / §2.1.4.2 step 7: `sn` is not 0 after the last proof hash (the
    /// proof ended before the path reached the root).
    #[error("the proof has too few hashes ({len}): it ended before the path reached the root")]
    ProofTooShort {
        /// The number of hashes given.
        len: usize,
    },
    /// Inclusion, RFC 9162 §2.1.3.2 step 5: the computed root is not the given root.
    #[error("the inclusion proof leads to a root other than the one given")]
    RootMismatch,
    /// Consistency, RFC 9162 §2.1.4.2 step 7: the computed `fr` is not `root1`.
    #[error("the consistency proof leads to a first root other than root1")]
    Root1Mismatch,
    /// Consistency, RFC 9162 §2.1.4.2 step 7: the computed `sr` is not `root2`.
    #[error("the consistency proof leads to a second root other than root2")]
    Root2Mismatch,
    /// Consistency between equal sizes: the two roots differ.
    #[error("the tree sizes are equal ({size}) but root1 and root2 differ")]
    RootsDiffer {
        /// Both tree sizes.
        size: u64,
    },
}

/// `bytes` as a hash, if it is exactly 32 bytes long.
fn to_hash(bytes: &[u8], which: HashRole) -> Result<Hash, VerifyError> {
    Hash::try_from(bytes).map_err(|_| VerifyError::WrongHashLength {
        which,
        len: bytes.len(),
    })
}

/// Checks that every proof hash is 32 bytes long, before any hashing.
fn check_proof_lengths(proof: &[impl AsRef<[u8]>]) -> Result<(), VerifyError> {
    for (i, hash) in proof.iter().enumerate() {
        to_hash(hash.as_ref(), HashRole::Proof(i))?;
    }
    Ok(())
}

/// Right-shifts `f_n` and `s_n` equally until `LSB(f_n)` is set or `f_n` is 0 (RFC 9162
/// §2.1.3.2 step 4b.ii and §2.1.4.2 step 6b.ii).
fn shift_until_odd_or_zero(f_n: &mut u64, s_n: &mut u64) {
    while *f_n & 1 == 0 && *f_n != 0 {
        *f_n >>= 1;
        *s_n >>= 1;
    }
}

/// RFC 9162 §2.1.3.2: verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// whose root is `root`, given the inclusion proof `proof` (deepest sibling first).
///
/// Every hash must be exactly 32 bytes. Never panics, for any sizes.
pub fn verify_inclusion(
    alg: HashAlg,
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), VerifyError> {
    let leaf_hash = to_hash(leaf_hash, HashRole::Leaf)?;
    let root = to_hash(root, HashRole::Root)?;
    check_proof_lengths(proof)?;

    // 1. If leaf_index is greater than or equal to tree_size, fail.
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    // 2. Set fn to leaf_index and sn to tree_size - 1.
    let (mut f_n, mut s_n) = (index, size - 1);
    // 3. Set r to hash.
    let mut r = leaf_hash;
    // 4. For each value p in the inclusion_path array:
    for (i, p) in proof.iter().enumerate() {
        let p = to_hash(p.as_ref(), HashRole::Proof(i))?;
        // a. If sn is 0, then stop the iteration and fail the proof verification.
        if s_n == 0 {
            return Err(VerifyError::ProofTooLong { len: proof.len() });
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if f_n & 1 == 1 || f_n == s_n {
            // i. Set r to HASH(0x01 || p || r).
            r = alg.node_hash(&p, &r);
            // ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
            //     LSB(fn) is set or fn is 0.
            if f_n & 1 == 0 {
                shift_until_odd_or_zero(&mut f_n, &mut s_n);
            }
        } else {
            // Otherwise: i. Set r to HASH(0x01 || r || p).
            r = alg.node_hash(&r, &p);
        }
        // c. Finally, right-shift both fn and sn one time.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0 and r and the
    //    root_hash are equal, then the log has proven the inclusion of hash. Otherwise, fail.
    if s_n != 0 {
        return Err(VerifyError::ProofTooShort { len: proof.len() });
    }
    if r != root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies that the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1`, given the consistency proof `proof`.
///
/// `size1 == size2` needs an empty proof and equal roots; `size1 == 0` is refused
/// ([`VerifyError::EmptyFirstTree`], see the module documentation). Every hash must be exactly
/// 32 bytes. Never panics, for any sizes.
pub fn verify_consistency(
    alg: HashAlg,
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[impl AsRef<[u8]>],
) -> Result<(), VerifyError> {
    let root1 = to_hash(root1, HashRole::Root1)?;
    let root2 = to_hash(root2, HashRole::Root2)?;
    check_proof_lengths(proof)?;

    if size1 > size2 {
        return Err(VerifyError::Size1GreaterThanSize2 { size1, size2 });
    }
    // §2.1.4.1 defines the proof for 0 < m only.
    if size1 == 0 {
        return Err(VerifyError::EmptyFirstTree);
    }
    // Equal sizes: SUBPROOF(m, D[m], true) is empty, and the trees are the same.
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(VerifyError::NonEmptyProof {
                size: size1,
                len: proof.len(),
            });
        }
        if root1 != root2 {
            return Err(VerifyError::RootsDiffer { size: size1 });
        }
        return Ok(());
    }

    // From here 0 < first < second.
    // 1. If consistency_path is an empty array, stop and fail the proof verification.
    let Some((head, tail)) = proof.split_first() else {
        return Err(VerifyError::EmptyProof { size1, size2 });
    };
    // 2. If first is an exact power of 2, then prepend first_hash to the consistency_path
    //    array. (Not copied: the path is then first_hash followed by the whole proof,
    //    otherwise the proof's head followed by its tail; `offset` maps positions back to
    //    the proof for error messages.)
    let (first_value, rest, offset) = if size1.is_power_of_two() {
        (root1, proof, 0)
    } else {
        (to_hash(head.as_ref(), HashRole::Proof(0))?, tail, 1)
    };
    // 3. Set fn to first - 1 and sn to second - 1.
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    // 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // 5. Set both fr and sr to the first value in the consistency_path array.
    let (mut fr, mut sr) = (first_value, first_value);
    // 6. For each subsequent value c in the consistency_path array:
    for (i, c) in rest.iter().enumerate() {
        let c = to_hash(c.as_ref(), HashRole::Proof(i + offset))?;
        // a. If sn is 0, then stop the iteration and fail the proof verification.
        if s_n == 0 {
            return Err(VerifyError::ProofTooLong { len: proof.len() });
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if f_n & 1 == 1 || f_n == s_n {
            // i. Set fr to HASH(0x01 || c || fr). Set sr to HASH(0x01 || c || sr).
            fr = alg.node_hash(&c, &fr);
            sr = alg.node_hash(&c, &sr);
            // ii. If LSB(fn) is not set, then right-shift both fn and sn equally until either
            //     LSB(fn) is set or fn is 0.
            if f_n & 1 == 0 {
                shift_until_odd_or_zero(&mut f_n, &mut s_n);
            }
        } else {
            // Otherwise: i. Set sr to HASH(0x01 || sr || c).
            sr = alg.node_hash(&sr, &c);
        }
        // c. Finally, right-shift both fn and sn one time.
        f_n >>= 1;
        s_n >>= 1;
    }
    // 7. Verify that the fr calculated is equal to the first_hash supplied, that the sr
    //    calculated is equal to the second_hash supplied, and that sn is 0.
    if s_n != 0 {
        return Err(VerifyError::ProofTooShort { len: proof.len() });
    }
    if fr != root1 {
        return Err(VerifyError::Root1Mismatch);
    }
    if sr != root2 {
        return Err(VerifyError::Root2Mismatch);
    }
    Ok(())
}

/// An in-memory tree (tests, benchmarks, and the offline verifier recomputing a root from
/// entries).
///
/// It keeps every complete node, level by level, so it is a [`NodeSource`] for any tree size up
/// to [`len`](Self::len): roots and proofs of every earlier version of the tree come from it
/// through [`root`], [`inclusion_proof`] and [`consistency_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryTree {
    alg: HashAlg,
    /// `levels[l][i]` is node `(l, i)`; `levels[0]` the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree hashing with `alg`.
    pub fn new(alg: HashAlg) -> Self {
        Self {
            alg,
            levels: vec![Vec::new()],
        }
    }

    /// The tree's hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Appends an entry (hashed as a leaf, RFC 9162 §2.1.1) and returns its index.
    pub fn push(&mut self, entry: &[u8]) -> u64 {
        self.push_leaf_hash(self.alg.leaf_hash(entry))
    }

    /// Appends a leaf hash and returns its index.
    pub fn push_leaf_hash(&mut self, leaf_hash: Hash) -> u64 {
        let index = self.len();
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break;
            };
            row.push(hash);
            // An even count means the new node completed its parent.
            match row.as_slice() {
                [.., left, right] if row.len().is_multiple_of(2) => {
                    hash = self.alg.node_hash(left, right);
                    level += 1;
                }
                _ => break,
            }
        }
        index
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Merkle Tree Hash of all the leaves.
    pub fn root(&self) -> Hash {
        match root(self.alg, self, self.len()) {
            Ok(hash) => hash,
            Err(never) => match never {},
        }
    }
}

impl NodeSource for MemoryTree {
    type Error = Infallible;

    /// The node, if complete; a node the tree does not hold (yet) reads as 32 zero bytes, which
    /// no real node hash is expected to be. Ask only for tree sizes up to `len()`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Infallible> {
        let node = usize::try_from(level)
            .ok()
            .and_then(|level| self.levels.get(level))
            .zip(usize::try_from(index).ok())
            .and_then(|(row, index)| row.get(index));
        Ok(node.copied().unwrap_or([0; 32]))
    }
}

/// A compact range / frontier: the right edge of a tree (at most 64 hashes) from which the
/// root is computed and to which leaves are appended in O(1) amortised, without the rest of
/// the tree.
///
/// It holds, for each set bit `l` of the size from the highest, the complete node at level `l`
/// that ends the covered prefix: the decomposition of `D[0:size]` that MTH uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    alg: HashAlg,
    size: u64,
    /// One hash per set bit of `size`, highest level (leftmost subtree) first.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new(alg: HashAlg) -> Self {
        Self {
            alg,
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// The frontier of the tree of the first `size` leaves of `src`: reads the complete
    /// subtrees of its right edge, node `(l, (size >> l) - 1)` for each set bit `l` of `size`
    /// (at most 64 reads).
    pub fn from_source<S: NodeSource>(alg: HashAlg, src: &S, size: u64) -> Result<Self, S::Error> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        for level in (0..u64::BITS).rev() {
            let prefix = size >> level;
            if prefix & 1 == 1 {
                hashes.push(src.node(level, prefix - 1)?);
            }
        }
        Ok(Self { alg, size, hashes })
    }

    /// The frontier's hash function.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash, and returns the complete nodes this push finished as
    /// `(level, index, hash)`, level 0 (the leaf itself) first, so a store can write them.
    ///
    /// A tree of `u64::MAX` leaves is full: pushing to it changes nothing and returns no node.
    pub fn push(&mut self, leaf_hash: Hash) -> Vec<(u32, u64, Hash)> {
        let index = self.size;
        let Some(new_size) = index.checked_add(1) else {
            return Vec::new();
        };
        let mut done = vec![(0, index, leaf_hash)];
        let mut hash = leaf_hash;
        let mut level = 0_u32;
        // Like a binary increment: each set low bit of the old size is a complete subtree of
        // the same size as the one just built, to its left; merge them. `index` is below
        // u64::MAX, so a clear bit ends the loop by level 63.
        while index.checked_shr(level).is_some_and(|bits| bits & 1 == 1) {
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = self.alg.node_hash(&left, &hash);
            level += 1;
            done.push((level, index >> level, hash));
        }
        self.hashes.push(hash);
        self.size = new_size;
        done
    }

    /// The Merkle Tree Hash of the tree (RFC 9162 §2.1.1): the frontier's subtrees folded from
    /// the right, `HASH(0x01 || h0 || HASH(0x01 || h1 || …))`; the empty tree's hash for size 0.
    pub fn root(&self) -> Hash {
        let mut hashes = self.hashes.iter().rev();
        let Some(&last) = hashes.next() else {
            return self.alg.empty_root();
        };
        hashes.fold(last, |acc, left| self.alg.node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
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
}
