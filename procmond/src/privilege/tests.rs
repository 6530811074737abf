//! Tests of the privilege drop's pure parts: masks, user resolution, status parsing and the
//! final check. The real drop is tested in `procmond/tests/privilege.rs`.

use super::*;

#[test]
fn capability_masks_match_proc_status() {
    let check = |caps: &[Capability], want: u64| {
        assert_eq!(capability_mask(caps.iter().copied()), want, "{caps:?}");
    };
    check(&[], 0);
    check(&[Capability::CAP_CHOWN], 1);
    check(&KEPT_CAPABILITIES, 0x0000_0000_0008_0004);
    check(
        &[Capability::CAP_SYS_PTRACE, Capability::CAP_SYS_PTRACE],
        1 << 19,
    );
    check(&[Capability::CAP_CHECKPOINT_RESTORE], 1 << 40);
    check(
        &caps::all().into_iter().collect::<Vec<_>>(),
        0x0000_01ff_ffff_ffff,
    );
}

/// A short name for an error, to assert the variant and the user it names.
fn kind(error: &PrivilegeError) -> String {
    match error {
        PrivilegeError::UnknownUser { name } => format!("UnknownUser({name})"),
        PrivilegeError::LookupUser { name, .. } => format!("LookupUser({name})"),
        PrivilegeError::NoFreeId => "NoFreeId".to_owned(),
        PrivilegeError::TargetIsRoot { name, .. } => format!("TargetIsRoot({name})"),
        other => format!("{other:?}"),
    }
}

#[test]
fn user_resolution_prefers_configured_then_daemoneye_then_an_id_of_its_own() {
    // `users` is the user database; the user "broken" makes the lookup itself fail. The
    // dynamic id, when asked for, is 61184; with `free` false there is none left.
    let check_with = |configured: Option<&str>,
                      users: &[(&str, u32, u32)],
                      free: bool,
                      want: Result<(&str, u32, u32), &str>| {
        let lookup = |name: &str| {
            if name == "broken" {
                return Err(io::Error::other("user database unreachable"));
            }
            Ok(users
                .iter()
                .find(|user| user.0 == name)
                .map(|user| (user.1, user.2)))
        };
        let dynamic = || {
            if free {
                Ok(61184)
            } else {
                Err(PrivilegeError::NoFreeId)
            }
        };
        let got = resolve_user(configured, lookup, dynamic);
        let got = match &got {
            Ok(user) => Ok((user.name.as_str(), user.uid, user.gid)),
            Err(error) => Err(kind(error)),
        };
        assert_eq!(
            got,
            want.map_err(str::to_owned),
            "{configured:?} in {users:?}"
        );
    };
    let check = |configured, users, want| check_with(configured, users, true, want);
    let all = [
        ("collector", 990, 990),
        ("daemoneye", 991, 991),
        ("nobody", 65534, 65534),
    ];
    check(Some("collector"), &all, Ok(("collector", 990, 990)));
    check(None, &all, Ok(("daemoneye", 991, 991)));
    // Never the shared nobody: an id of procmond's own, as uid and gid.
    check(None, &all[2..], Ok((DYNAMIC_USER, 61184, 61184)));
    check(None, &[], Ok((DYNAMIC_USER, 61184, 61184)));
    check_with(None, &all[2..], false, Err("NoFreeId"));
    // A configured user needs no dynamic id, and nobody may still be configured by name.
    check_with(Some("nobody"), &all, false, Ok(("nobody", 65534, 65534)));
    // A configured user that does not exist is an error even though others would do.
    check(Some("ghost"), &all, Err("UnknownUser(ghost)"));
    check(Some(""), &all, Err("UnknownUser()"));
    // A failing lookup is an error of its own, not "no such user".
    check(Some("broken"), &all, Err("LookupUser(broken)"));
    check(Some("root"), &[("root", 0, 0)], Err("TargetIsRoot(root)"));
    check(
        Some("wheel"),
        &[("wheel", 1000, 0)],
        Err("TargetIsRoot(wheel)"),
    );
    check(
        Some("toor"),
        &[("toor", 0, 1000)],
        Err("TargetIsRoot(toor)"),
    );
    check(None, &[("daemoneye", 0, 0)], Err("TargetIsRoot(daemoneye)"));
}

#[test]
fn a_failing_lookup_of_the_default_user_is_an_error_not_a_fallback() {
    let lookup = |name: &str| match name {
        DEFAULT_USER => Err(io::Error::other("user database unreachable")),
        _ => Ok(Some((65534, 65534))),
    };
    let error = resolve_user(None, lookup, || Ok(61184)).unwrap_err();
    assert_eq!(kind(&error), "LookupUser(daemoneye)");
}

const STATUS: &str = "Name:\tprocmond\nUmask:\t0022\nState:\tS (sleeping)\n\
    Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n\
    Groups:\t65534 \nThreads:\t1\nCapInh:\t0000000000000000\n\
    CapPrm:\t0000000000080004\nCapEff:\t0000000000080004\nCapBnd:\t0000000000080004\n\
    CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n";

#[test]
fn status_fields_are_found_by_exact_key() {
    let check = |status: &str, key: &str, want: Option<&str>| {
        assert_eq!(status_field(status, key), want, "{key}");
    };
    check(STATUS, "Threads", Some("1"));
    check(STATUS, "CapEff", Some("0000000000080004"));
    check(STATUS, "Groups", Some("65534"));
    check(STATUS, "NoNewPrivs", Some("1"));
    // "Cap" is a prefix of several keys and the key of none.
    check(STATUS, "Cap", None);
    check(STATUS, "Seccomp_filters", None);
    check("Groups:\t\n", "Groups", Some(""));
    check("", "Uid", None);
}

#[test]
fn id_lists_parse_or_fail_whole() {
    let check = |value: &str, want: Option<&[u32]>| {
        assert_eq!(parse_ids(value).as_deref(), want, "{value:?}");
    };
    check("0\t0\t0\t0", Some(&[0, 0, 0, 0]));
    check("65534 ", Some(&[65534]));
    check("", Some(&[]));
    check("1 x 2", None);
    check("-1", None);
}

fn dropped() -> Observed {
    Observed {
        uids: vec![65534; 7],
        gids: vec![65534; 7],
        groups: vec![65534],
        inheritable: 0,
        permitted: 0x80004,
        effective: 0x80004,
        bounding: 0x80004,
        ambient: 0,
        no_new_privs: true,
        regained_root: false,
    }
}

#[test]
fn the_final_check_accepts_only_the_exact_dropped_state() {
    let target = TargetUser {
        name: "nobody".to_owned(),
        uid: 65534,
        gid: 65534,
    };
    let check = |change: fn(&mut Observed), want: Option<&str>| {
        let mut seen = dropped();
        change(&mut seen);
        let got = match check_dropped(&seen, &target) {
            Ok(()) => None,
            Err(PrivilegeError::Verify { what }) => Some(what),
            Err(other) => panic!("not a Verify error: {other:?}"),
        };
        assert_eq!(got.as_deref(), want, "{seen:?}");
    };
    check(|_| {}, None);
    check(
        |seen| seen.uids[2] = 0,
        Some("user ids are [65534, 65534, 0, 65534, 65534, 65534, 65534], not all 65534"),
    );
    check(
        |seen| seen.uids.clear(),
        Some("user ids are [], not all 65534"),
    );
    check(
        |seen| seen.gids[6] = 0,
        Some("group ids are [65534, 65534, 65534, 65534, 65534, 65534, 0], not all 65534"),
    );
    check(
        |seen| seen.groups.push(0),
        Some("supplementary groups are [65534, 0], not [65534]"),
    );
    check(
        |seen| seen.permitted = 0x1ff_ffff_ffff,
        Some("permitted capabilities are 000001ffffffffff, not 0000000000080004"),
    );
    check(
        |seen| seen.effective = 0x80000,
        Some("effective capabilities are 0000000000080000, not 0000000000080004"),
    );
    // A capability the caps crate cannot name (bit 41) left in the bounding set.
    check(
        |seen| seen.bounding |= 1 << 41,
        Some("bounding capabilities are 0000020000080004, not 0000000000080004"),
    );
    check(
        |seen| seen.inheritable = 4,
        Some("inheritable capabilities are 0000000000000004, not 0000000000000000"),
    );
    check(
        |seen| seen.ambient = 1 << 19,
        Some("ambient capabilities are 0000000000080000, not 0000000000000000"),
    );
    check(
        |seen| seen.no_new_privs = false,
        Some("no_new_privs is not set"),
    );
    check(
        |seen| seen.regained_root = true,
        Some("setuid(0) succeeded after the drop"),
    );
}
