//! `ringfence keygen`: write a new ed25519 signing key pair and print its
//! key id. Refuses to overwrite (exit 1); trouble writing is exit 2.

use anyhow::Context;

use crate::Exit;
use crate::cmd::output;
use crate::flags::KeygenArgs;

pub(crate) fn run(args: KeygenArgs) -> anyhow::Result<Exit> {
    match ringfence_bundle::generate_keypair(&args.out) {
        Ok(keyid) => {
            let prefix = args.out.display();
            eprintln!(
                "wrote {prefix}.key (private, mode 0600: keep it secret) and {prefix}.pub (give it to the agents)"
            );
            output::line(keyid)?;
            Ok(Exit::Clean)
        }
        Err(e) if e.is_refusal() => {
            eprintln!("refused: {e}");
            Ok(Exit::Findings)
        }
        Err(e) => Err(e).context("cannot write the key pair"),
    }
}
