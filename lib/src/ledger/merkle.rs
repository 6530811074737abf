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
mod tests;
