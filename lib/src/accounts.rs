//! The account databases' text (`/etc/passwd`, `/etc/group`): the one parser for the agent's
//! `users` table and procmond's choice of an unused id. Pure: the caller reads the file.
//!
//! A record is a line of colon-separated fields; comments (`#`), NIS compat lines (`+`, `-`),
//! records with an empty name and records whose id fields are not numbers are skipped.

/// One `/etc/passwd` record: `name:password:uid:gid:gecos:home:shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account<'a> {
    /// The user name.
    pub name: &'a str,
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
}

/// The fields after the name of each record of a colon database, with the name.
fn records(text: &str) -> impl Iterator<Item = (&str, std::str::Split<'_, char>)> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            return None;
        }
        let _password = fields.next()?;
        Some((name, fields))
    })
}

/// Every well-formed account of a `/etc/passwd` text.
pub fn passwd(text: &str) -> Vec<Account<'_>> {
    records(text)
        .filter_map(|(name, mut fields)| {
            let uid = fields.next()?.trim().parse().ok()?;
            let gid = fields.next()?.trim().parse().ok()?;
            Some(Account { name, uid, gid })
        })
        .collect()
}

/// The gid of every well-formed record of a `/etc/group` text (`name:password:gid:members`).
pub fn group_ids(text: &str) -> Vec<u32> {
    records(text)
        .filter_map(|(_, mut fields)| fields.next()?.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_records_give_their_names_and_ids() {
        let passwd_text = "root:x:0:0:root:/root:/bin/bash\n# comment:x:1:1\n+nis::::::\n\
                           broken\n:x:5:5::/:/bin/sh\nbad:x:notanumber:1::/:\nshort:x:7\n\n\
                           svc:x:61184:61200::/:/bin/false\n";
        assert_eq!(
            passwd(passwd_text),
            [
                Account {
                    name: "root",
                    uid: 0,
                    gid: 0
                },
                Account {
                    name: "svc",
                    uid: 61184,
                    gid: 61200
                }
            ]
        );
        let group = "root:x:0:\nadm:x:4:syslog,alice\n#x:x:9:\nbad:x:y:\n-nis:x:3:\n";
        assert_eq!(group_ids(group), [0, 4]);
        assert!(passwd("").is_empty() && group_ids("").is_empty());
    }
}
