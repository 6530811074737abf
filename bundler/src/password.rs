//! Reading a password as stock minisign does: from the terminal without echo, or, when
//! standard input is not a terminal, one line of it per question (so that scripts and tests
//! can pipe `printf 'pw\npw\n'` as they do to `minisign -G`, and `printf 'pw\n'` to a build as
//! they do to `minisign -S`). There is deliberately no environment variable: a password in the
//! environment is readable by every process of the user and lands in shell histories.

use std::io::{self, BufRead, IsTerminal as _, Read as _};

use anyhow::Context as _;
use daemoneye_lib::minisign::MAX_PASSWORD_BYTES;

use crate::UsageError;

/// A password's bytes, zeroed when dropped.
pub struct Password(Vec<u8>);

impl Password {
    /// The password's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// Asks for a new password twice and checks that both are the same and not empty.
pub fn read_new() -> anyhow::Result<Password> {
    let mut stdin = io::stdin().lock();
    let first = ask(&mut stdin, "Password: ")?;
    let second = ask(&mut stdin, "Password (one more time): ")?;
    if first.0 != second.0 {
        return Err(UsageError("the two passwords do not match".to_owned()).into());
    }
    if first.0.is_empty() {
        return Err(UsageError(
            "an empty password does not protect a key: give one, or use --unencrypted".to_owned(),
        )
        .into());
    }
    Ok(first)
}

/// Asks once for the password of an existing key (as `minisign -S` does).
pub fn read_existing(prompt: &str) -> anyhow::Result<Password> {
    ask(&mut io::stdin().lock(), prompt)
}

/// One password: from the terminal when standard input is one, else one line of stdin.
///
/// A line of a pipe is read a byte at a time, through a descriptor of its own
/// (`/dev/stdin`), so that nothing after its `\n` is consumed: the next command of a script
/// that shares the pipe (`keygen` twice, then `build`, as the air-gap guide does) finds its
/// own line there, as with the shell's `read`. std's `Stdin` would buffer ahead and drop it.
fn ask(stdin: &mut io::StdinLock<'_>, prompt: &str) -> anyhow::Result<Password> {
    if stdin.is_terminal() {
        let typed = rpassword::prompt_password(prompt).context("reading the password")?;
        return Ok(Password(typed.into_bytes()));
    }
    match std::fs::File::open("/dev/stdin") {
        Ok(file) => read_line(&mut io::BufReader::with_capacity(1, file)),
        Err(_) => read_line(stdin),
    }
}

/// One line of `input`, its `\n` and a `\r` before it removed; at most
/// [`MAX_PASSWORD_BYTES`] bytes.
fn read_line(input: &mut impl BufRead) -> anyhow::Result<Password> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_PASSWORD_BYTES + 2).unwrap_or(u64::MAX);
    input
        .take(limit)
        .read_until(b'\n', &mut line)
        .context("reading the password from standard input")?;
    let mut password = Password(line);
    if password.0.last() != Some(&b'\n') {
        if password.0.len() > MAX_PASSWORD_BYTES {
            return Err(UsageError("the password is longer than 1024 bytes".to_owned()).into());
        }
        if password.0.is_empty() {
            return Err(UsageError(
                "no password on standard input (it ended): give it twice, one line each".to_owned(),
            )
            .into());
        }
    } else {
        password.0.pop();
        if password.0.last() == Some(&b'\r') {
            password.0.pop();
        }
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_line_ends() {
        for (input, expected) in [
            (&b"pw\n"[..], &b"pw"[..]),
            (b"pw\r\n", b"pw"),
            (b"pw", b"pw"),
            (b"\n", b""),
        ] {
            let password = read_line(&mut &input[..]).unwrap();
            assert_eq!(password.bytes(), expected, "{input:?}");
        }
        assert!(read_line(&mut &b""[..]).is_err());
        assert!(read_line(&mut &vec![b'a'; 2000][..]).is_err());
    }
}
