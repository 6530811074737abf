//! A small ledger fixed at build time, shared by the ledger fuzz targets and by
//! `examples/make_seeds.rs` (both include this file by path), so that the seeds are signed by
//! the very key the targets trust and prove entries of the very tree they know.
//!
//! Everything is deterministic: a fixed Ed25519 seed (Ed25519 signatures are deterministic),
//! fixed entries and fixed times.

#![allow(dead_code)] // each includer uses part of it

use daemoneye_lib::ledger::HashAlg;
use daemoneye_lib::ledger::entry::{Body, Entry, Source};
use daemoneye_lib::ledger::merkle::{self, MemoryTree};
use daemoneye_lib::ledger::note::{
    Checkpoint, ConsistencyProofFile, InclusionProofFile, NoteSigner, NoteVerifier,
};

/// The key name and checkpoint origin.
pub const ORIGIN: &str = "fuzz.daemoneye.local/ledger";
/// Entries in the fixed tree: enough for proofs of every shape up to depth 4.
pub const ENTRIES: u64 = 13;
/// The checkpoints' time.
pub const TIME_MS: i64 = 1_763_719_200_123;

/// The fixed ledger: its key, its entries' bytes, its tree and a signed checkpoint of every
/// size from 0 to [`ENTRIES`].
pub struct Fixture {
    pub signer: NoteSigner,
    pub verifier: NoteVerifier,
    pub alg: HashAlg,
    pub entries: Vec<Vec<u8>>,
    pub tree: MemoryTree,
    /// `checkpoints[n]` is the signed checkpoint note of the first `n` entries.
    pub checkpoints: Vec<String>,
}

impl Fixture {
    /// The fixture hashing with `alg`.
    pub fn new(alg: HashAlg) -> Self {
        // A constant seed and a name the key-name rules accept: from_seed cannot fail.
        let signer = NoteSigner::from_seed(ORIGIN, [0x5e; 32]).expect("a valid key name");
        let verifier = signer.verifier();
        let mut tree = MemoryTree::new(alg);
        let mut entries = Vec::new();
        let mut checkpoints = vec![checkpoint(&signer, alg, &tree)];
        for (i, entry) in sample_entries(&verifier, alg)
            .into_iter()
            .cycle()
            .take(ENTRIES as usize)
            .enumerate()
        {
            let mut entry = entry;
            entry.time_ms = TIME_MS + i as i64;
            let bytes = entry.encode().expect("the sample entries encode");
            tree.push(&bytes);
            entries.push(bytes);
            checkpoints.push(checkpoint(&signer, alg, &tree));
        }
        Self {
            signer,
            verifier,
            alg,
            entries,
            tree,
            checkpoints,
        }
    }

    /// The inclusion proof file of entry `index` against the checkpoint of `size`.
    pub fn inclusion(&self, index: u64, size: u64) -> InclusionProofFile {
        InclusionProofFile {
            entry: self.entries[index as usize].clone(),
            index,
            proof: merkle::inclusion_proof(self.alg, &self.tree, index, size)
                .expect("index < size <= ENTRIES"),
            checkpoint: self.checkpoints[size as usize].clone(),
        }
    }

    /// The consistency proof file from `size1` to `size2`.
    pub fn consistency(&self, size1: u64, size2: u64) -> ConsistencyProofFile {
        ConsistencyProofFile {
            size1,
            proof: merkle::consistency_proof(self.alg, &self.tree, size1, size2)
                .expect("size1 <= size2 <= ENTRIES"),
            checkpoint: self.checkpoints[size2 as usize].clone(),
        }
    }
}

fn checkpoint(signer: &NoteSigner, alg: HashAlg, tree: &MemoryTree) -> String {
    Checkpoint {
        origin: ORIGIN.to_owned(),
        size: tree.len(),
        root: tree.root(),
        hash: alg,
        time_ms: TIME_MS,
    }
    .sign(signer)
    .expect("a valid origin")
}

/// One entry of every kind, each field set (an absent and a present optional string).
pub fn sample_entries(verifier: &NoteVerifier, alg: HashAlg) -> Vec<Entry> {
    let h = |b: u8| [b; 32];
    let procmond = |body| Entry {
        source: Source::Procmond,
        time_ms: TIME_MS,
        body,
    };
    let agent = |body| Entry {
        source: Source::Agent,
        time_ms: TIME_MS,
        body,
    };
    vec![
        procmond(Body::LedgerCreated {
            hash_alg: alg.name().to_owned(),
            verifier_key: verifier.to_string(),
        }),
        procmond(Body::ProcmondStarted {
            version: "0.1.0".to_owned(),
            pid: 4242,
        }),
        procmond(Body::PrivilegesDropped {
            user: "daemoneye".to_owned(),
            uid: 998,
            gid: 998,
            effective_caps: 0x0000_0000_0008_0004,
        }),
        procmond(Body::Scan {
            scan_id: 1,
            started_ms: TIME_MS - 250,
            finished_ms: TIME_MS,
            process_count: 312,
            records_hash: h(0xab),
        }),
        agent(Body::AgentStarted {
            version: "0.1.0".to_owned(),
            pid: 4241,
        }),
        agent(Body::AlertRaised {
            alert_id: "a1b2c3".to_owned(),
            rule_id: "core-reverse-shell".to_owned(),
            severity: "high".to_owned(),
            host: "host-1".to_owned(),
        }),
        agent(Body::AlertDelivered {
            alert_id: "a1b2c3".to_owned(),
            sink: "siem".to_owned(),
        }),
        agent(Body::BundleAccepted {
            name: "core-rules".to_owned(),
            version: "7".to_owned(),
            sha256: h(0x01),
        }),
        agent(Body::BundleRefused {
            name: Some("core-rules".to_owned()),
            version: None,
            sha256: h(0x02),
            reason: "signature does not verify \u{202e}".to_owned(),
        }),
        agent(Body::BundleRolledBack {
            name: "core-rules".to_owned(),
            from_version: "7".to_owned(),
            to_version: "6".to_owned(),
        }),
        agent(Body::ConfigChanged {
            source: "/etc/daemoneye/config.toml".to_owned(),
            config_hash: h(0x03),
        }),
        agent(Body::AgentStopped {
            reason: "SIGTERM".to_owned(),
        }),
        procmond(Body::ProcmondStopped {
            reason: "the agent closed the connection".to_owned(),
        }),
    ]
}
