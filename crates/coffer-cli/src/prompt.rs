//! Secrets a command asks for when they are not on its command line: unseal and rekey key
//! shares, a token to log in with, a userpass password.
//!
//! The CLI prompts as Vault does (`Unseal Key (will be hidden): `), on stderr so that stdout
//! stays clean for `-format=json`. On a terminal the answer is read with echo turned off
//! (`rpassword`, from the controlling terminal); otherwise the secret is the first line of
//! stdin, so `echo "$KEY" | coffer operator unseal` works. A secret never has to appear in
//! argv, where other users' `ps` could see it.

use std::io::BufRead;

use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};
use crate::Session;

/// Ask for a secret: `prompt` (e.g. `Unseal Key (will be hidden): `) on a terminal, read
/// without echo; one line of stdin otherwise. `what` names it in errors. The line ending is
/// removed; other whitespace is kept (a password may end in a space).
pub(crate) fn read_secret(
    session: &mut Session<'_>,
    prompt: &str,
    what: &str,
) -> CliResult<Zeroizing<String>> {
    let _ = write!(session.err, "{prompt}");
    let _ = session.err.flush();
    let secret = if session.stdin_is_terminal {
        // rpassword ends the prompt's line itself once Enter is read.
        Zeroizing::new(
            rpassword::read_password()
                .map_err(|e| CliError::io(format!("error reading {what} from the terminal"), e))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::BufReader::new(&mut *session.stdin)
            .read_line(&mut line)
            .map_err(|e| CliError::io(format!("error reading {what} from stdin"), e))?;
        let _ = writeln!(session.err);
        line
    };
    Ok(Zeroizing::new(
        secret.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}
