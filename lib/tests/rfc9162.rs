//! The ledger's Merkle tree (`ledger::merkle`) against external RFC 9162 / RFC 6962 references.
//!
//! 1. Every proof vector of transparency-dev/merkle (vendored unchanged under
//!    `tests/data/rfc9162-merkle/`, Apache-2.0, see its README.md and LICENSE) goes through
//!    `verify_inclusion` / `verify_consistency` with SHA-256, hashes decoded from base64 and
//!    passed as raw bytes, so that wrong-length hashes reach the API: `wantErr: true` must be an
//!    error, `wantErr: false` must verify.
//! 2. A `MemoryTree` of the eight classic RFC 6962 test leaves must give the roots, nodes and
//!    proofs published with them in transparency-dev/merkle `testonly/constants.go` and
//!    `testonly/reference_test.go` (Apache-2.0), hard-coded below from there.
//! 3. The vendored happy-path vectors built from those same leaves must be exactly the proofs we
//!    generate.

// Test and benchmark code: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use daemoneye_lib::ledger::merkle::{
    Frontier, HashRole, MemoryTree, NodeSource, VerifyError, consistency_proof, inclusion_proof,
    root, verify_consistency, verify_inclusion,
};
use daemoneye_lib::ledger::{Hash, HashAlg};
use serde::Deserialize;

const ALG: HashAlg = HashAlg::Sha256;

/// The JSON vectors in the vendored folder (the folder also holds LICENSE, SOURCE.md and our
/// README.md: 198 upstream files plus the README).
const INCLUSION_FILES: usize = 98;
const CONSISTENCY_FILES: usize = 98;

/// Vectors our verifier judges differently from the Go code that produced them, with the error
/// we give instead and why. See the vendored README.md.
fn stricter_than_upstream(path: &str) -> Option<VerifyError> {
    match path {
        // size1 == size2 == 1 with two equal 12-byte "roots": upstream only compares the
        // bytes; we reject any hash that is not 32 bytes long.
        "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json" => {
            Some(VerifyError::WrongHashLength {
                which: HashRole::Root1,
                len: 12,
            })
        }
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc9162-merkle")
}

/// Every `.json` file under `dir`, as paths relative to the vectors folder, sorted.
fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            out.push(path);
        }
    }
}

fn b64(text: &str, file: &str, field: &str) -> Vec<u8> {
    STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("{file}: {field} is not base64: {e}"))
}

fn b64_proof(proof: Option<&[String]>, file: &str) -> Vec<Vec<u8>> {
    proof
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, hash)| b64(hash, file, &format!("proof[{i}]")))
        .collect()
}

fn read_vector<T: for<'de> Deserialize<'de>>(path: &Path, name: &str) -> T {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// How a vector's leaf and root hashes reach the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roots {
    /// As decoded.
    Raw,
    /// A leaf or root that is neither empty nor 32 bytes long (the 9- and 12-byte
    /// placeholders such as `"don't care 1"`) replaced by the SHA-256 digest of its bytes
    /// (equal inputs stay equal, different ones different), so that the verifier's logic
    /// rather than its length check decides. Empty hashes stay empty: the vectors that give
    /// them are about the length itself. Proof hashes stay as they are.
    Resized,
}

fn field(text: &str, file: &str, name: &str, roots: Roots) -> Vec<u8> {
    let bytes = b64(text, file, name);
    if roots == Roots::Resized && !bytes.is_empty() && bytes.len() != 32 {
        return ALG.digest(&[&bytes]).to_vec();
    }
    bytes
}

fn run_inclusion(name: &str, path: &Path, roots: Roots) -> (bool, Result<(), VerifyError>) {
    let v: InclusionVector = read_vector(path, name);
    let result = verify_inclusion(
        ALG,
        v.leaf_idx,
        v.tree_size,
        &field(&v.leaf_hash, name, "leafHash", roots),
        &b64_proof(v.proof.as_deref(), name),
        &field(&v.root, name, "root", roots),
    );
    assert!(!v.desc.is_empty(), "{name}: no desc");
    (v.want_err, result)
}

fn run_consistency(name: &str, path: &Path, roots: Roots) -> (bool, Result<(), VerifyError>) {
    let v: ConsistencyVector = read_vector(path, name);
    let result = verify_consistency(
        ALG,
        v.size1,
        v.size2,
        &field(&v.root1, name, "root1", roots),
        &field(&v.root2, name, "root2", roots),
        &b64_proof(v.proof.as_deref(), name),
    );
    assert!(!v.desc.is_empty(), "{name}: no desc");
    (v.want_err, result)
}

/// Runs every vendored vector, checks the counts, and returns one line per vector whose result
/// is not the expected one (`wantErr`, or our own error for the listed exceptions when the
/// roots are raw).
fn run_all(roots: Roots) -> Vec<String> {
    let dir = vectors_dir();
    for kept in ["LICENSE", "SOURCE.md", "README.md"] {
        assert!(
            dir.join(kept).is_file(),
            "{kept} missing beside the vectors"
        );
    }
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();

    let (mut inclusion, mut consistency, mut exceptions) = (0, 0, 0);
    let mut failures = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&dir).unwrap_or(path);
        let name = relative.to_string_lossy().replace('\\', "/");
        let (want_err, result) = if name.starts_with("inclusion/") {
            inclusion += 1;
            run_inclusion(&name, path, roots)
        } else if name.starts_with("consistency/") {
            consistency += 1;
            run_consistency(&name, path, roots)
        } else {
            panic!("{name}: neither an inclusion nor a consistency vector");
        };
        if let Some(ours) = stricter_than_upstream(&name) {
            exceptions += 1;
            if roots == Roots::Raw {
                let want = Err(ours);
                if result != want {
                    failures.push(format!(
                        "{name}: want our stricter {want:?}, got {result:?}"
                    ));
                }
                continue;
            }
        }
        match (want_err, &result) {
            (true, Err(_)) | (false, Ok(())) => {}
            (true, Ok(())) => failures.push(format!("{name}: wantErr true, but it verified")),
            (false, Err(e)) => failures.push(format!("{name}: wantErr false, but: {e}")),
        }
    }

    assert_eq!(inclusion, INCLUSION_FILES, "inclusion vectors seen");
    assert_eq!(consistency, CONSISTENCY_FILES, "consistency vectors seen");
    assert_eq!(files.len(), INCLUSION_FILES + CONSISTENCY_FILES);
    assert_eq!(
        exceptions, 1,
        "every listed exception must still be in the folder"
    );
    failures
}

#[test]
fn every_vendored_vector_is_judged_as_upstream_says() {
    let failures = run_all(Roots::Raw);
    assert!(
        failures.is_empty(),
        "{} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Many "additional" vectors give 9- or 12-byte roots, which our length check rejects before
/// the condition they are about (size1 > size2, size1 == 0, equal sizes…) is looked at. With
/// such roots replaced by 32-byte stand-ins, every vector, the listed exception included, must
/// still come out as upstream says: our logic agrees with upstream's beyond the length check.
#[test]
fn vendored_vectors_agree_with_upstream_beyond_the_length_check() {
    let failures = run_all(Roots::Resized);
    assert!(
        failures.is_empty(),
        "{} vectors failed with 32-byte roots:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ----- The classic RFC 6962 test tree, from transparency-dev/merkle `testonly`. -----

/// `testonly.LeafInputs()`.
const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// `testonly.RootHashes()`: the SHA-256 root of the first `n` leaves, for n = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `testonly.NodeHashes()`: every complete node of the 8-leaf tree, by level.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// `TestRefInclusionProof` in `testonly/reference_test.go`: (index, size, proof).
const INCLUSION_PROOFS: [(u64, u64, &[&str]); 7] = [
    (0, 1, &[]),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// `TestRefConsistencyProof` in `testonly/reference_test.go`: (size1, size2, proof).
const CONSISTENCY_PROOFS: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn hex(text: &str) -> Hash {
    assert_eq!(text.len(), 64, "{text}");
    let mut hash = [0; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    hash
}

fn hexes(texts: &[&str]) -> Vec<Hash> {
    texts.iter().map(|text| hex(text)).collect()
}

fn reference_tree() -> MemoryTree {
    let mut tree = MemoryTree::new(ALG);
    for (i, leaf) in LEAVES.iter().enumerate() {
        assert_eq!(tree.push(leaf), i as u64);
    }
    tree
}

fn never<T>(result: Result<T, impl std::fmt::Debug>) -> T {
    result.unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn reference_tree_roots_nodes_and_frontier() {
    let tree = reference_tree();
    let mut frontier = Frontier::new(ALG);
    assert_eq!(frontier.root(), hex(ROOTS[0]));
    for size in 0..=8_u64 {
        let want = hex(ROOTS[size as usize]);
        assert_eq!(never(root(ALG, &tree, size)), want, "root of {size}");
        assert_eq!(
            never(Frontier::from_source(ALG, &tree, size)).root(),
            want,
            "frontier root of {size}"
        );
        if size > 0 {
            frontier.push(ALG.leaf_hash(LEAVES[size as usize - 1]));
            assert_eq!(frontier.root(), want, "pushed frontier root of {size}");
        }
    }
    assert_eq!(tree.root(), hex(ROOTS[8]));
    assert_eq!(ALG.empty_root(), hex(ROOTS[0]));
    for (level, row) in NODES.iter().enumerate() {
        for (index, node) in row.iter().enumerate() {
            assert_eq!(
                never(tree.node(level as u32, index as u64)),
                hex(node),
                "node ({level}, {index})"
            );
        }
    }
}

#[test]
fn reference_tree_proofs() {
    let tree = reference_tree();
    for (index, size, want) in INCLUSION_PROOFS {
        let want = hexes(want);
        assert_eq!(
            never(inclusion_proof(ALG, &tree, index, size)),
            want,
            "inclusion {index}/{size}"
        );
        let leaf = ALG.leaf_hash(LEAVES[index as usize]);
        let size_root = hex(ROOTS[size as usize]);
        assert_eq!(
            verify_inclusion(ALG, index, size, &leaf, &want, &size_root),
            Ok(())
        );
    }
    for (size1, size2, want) in CONSISTENCY_PROOFS {
        let want = hexes(want);
        assert_eq!(
            never(consistency_proof(ALG, &tree, size1, size2)),
            want,
            "consistency {size1}->{size2}"
        );
        let (root1, root2) = (hex(ROOTS[size1 as usize]), hex(ROOTS[size2 as usize]));
        assert_eq!(
            verify_consistency(ALG, size1, size2, &root1, &root2, &want),
            Ok(())
        );
    }
}

/// The vendored happy paths built from the reference leaves (recognised by their roots, which
/// must be the published `ROOTS`) are exactly the proofs we generate.
#[test]
fn vendored_happy_paths_are_the_proofs_we_generate() {
    let dir = vectors_dir();
    let tree = reference_tree();
    let reference_size = |root: &[u8]| {
        ROOTS
            .iter()
            .position(|r| hex(r).as_slice() == root)
            .map(|size| size as u64)
    };
    let (mut inclusion, mut consistency) = (0, 0);

    for n in 0..=4 {
        let name = format!("inclusion/{n}/happy-path.json");
        let v: InclusionVector = read_vector(&dir.join(&name), &name);
        assert!(!v.want_err, "{name}");
        let root = b64(&v.root, &name, "root");
        if reference_size(&root) != Some(v.tree_size) {
            continue;
        }
        assert_eq!(
            b64(&v.leaf_hash, &name, "leafHash"),
            ALG.leaf_hash(LEAVES[v.leaf_idx as usize]),
            "{name}: leaf"
        );
        let want: Vec<Hash> = b64_proof(v.proof.as_deref(), &name)
            .iter()
            .map(|h| never(Hash::try_from(h.as_slice())))
            .collect();
        assert_eq!(
            never(inclusion_proof(ALG, &tree, v.leaf_idx, v.tree_size)),
            want,
            "{name}"
        );
        inclusion += 1;
    }

    for n in 0..=4 {
        let name = format!("consistency/{n}/happy-path.json");
        let v: ConsistencyVector = read_vector(&dir.join(&name), &name);
        assert!(!v.want_err, "{name}");
        let (root1, root2) = (b64(&v.root1, &name, "root1"), b64(&v.root2, &name, "root2"));
        if reference_size(&root1) != Some(v.size1) || reference_size(&root2) != Some(v.size2) {
            continue;
        }
        let want: Vec<Hash> = b64_proof(v.proof.as_deref(), &name)
            .iter()
            .map(|h| never(Hash::try_from(h.as_slice())))
            .collect();
        assert_eq!(
            never(consistency_proof(ALG, &tree, v.size1, v.size2)),
            want,
            "{name}"
        );
        consistency += 1;
    }

    // All five numbered happy paths of each kind use the reference leaves.
    assert_eq!((inclusion, consistency), (5, 5));
}
