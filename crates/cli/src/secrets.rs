//! `sluice secrets rotate-key`: re-encrypts every stored destination secret under a new key.
//!
//! All or nothing, and never a moment without a key that opens what is stored: the new key is written
//! to `secret.key.next` (0600, flushed) first; the metadata store re-seals every secret in one
//! transaction; only then is `secret.key.next` renamed over `secret.key`. A crash in between leaves
//! `secret.key.next`, which `serve` refuses to start with and the next `rotate-key` finishes: it keeps the
//! new key if it opens every stored secret (the transaction committed), and discards it otherwise.
//!
//! With `SLUICE_SECRET_KEY` (no key file), the new key comes from `SLUICE_NEW_SECRET_KEY`, and the
//! operator puts it in place of the old one after the command succeeds. Instances using the store must
//! be stopped first: they hold the old key in memory. For embedded SQLite metadata the data directory's
//! lock makes sure of it.

use anyhow::{bail, Context, Result};
use sluice_store::SecretBox;

use crate::ServerArgs;

pub async fn rotate_key(args: &ServerArgs, new_key: Option<&str>) -> Result<()> {
    let dir = &args.data_dir;
    if !dir.exists() {
        bail!("there is no data directory at {}", dir.display());
    }
    crate::serve::lock_data_dir(dir)?;
    let open = |key: SecretBox| async move {
        sluice_store::open_metadata(args.metadata_url.as_deref(), dir, key)
            .await
            .context("cannot open the metadata store")
    };

    if let Some(current) = args.secret_key.as_deref() {
        let old =
            SecretBox::from_base64(current).context("SLUICE_SECRET_KEY is not a valid key")?;
        let Some(new_text) = new_key else {
            bail!(
                "the key comes from SLUICE_SECRET_KEY: give the new one in SLUICE_NEW_SECRET_KEY (`sluice secrets \
                 generate-key` makes one), then replace SLUICE_SECRET_KEY with it"
            );
        };
        let new =
            SecretBox::from_base64(new_text).context("SLUICE_NEW_SECRET_KEY is not a valid key")?;
        let n = open(old).await?.reseal_secrets(&new).await?;
        println!(
            "Re-encrypted the secrets of {n} destination(s) under the new key. Set SLUICE_SECRET_KEY to the \
             value of SLUICE_NEW_SECRET_KEY before starting Sluice again: the old key no longer opens them."
        );
        return Ok(());
    }
    if new_key.is_some() {
        bail!("SLUICE_NEW_SECRET_KEY is for a key given in SLUICE_SECRET_KEY; the key file's successor is generated");
    }

    let old = SecretBox::load_current_key(dir).with_context(|| {
        format!(
            "cannot read the secret key of {} (nothing to rotate)",
            dir.display()
        )
    })?;
    if let Some(next) = SecretBox::load_next_key(dir)? {
        // A rotation was interrupted: its key is the one in use if it opens everything stored.
        let store = open(next).await?;
        if store.list_destinations().await.is_ok() {
            drop(store);
            SecretBox::promote_next_key(dir)?;
            println!("Finished the key rotation that was interrupted: the new key is in place.");
            return Ok(());
        }
        drop(store);
        SecretBox::discard_next_key(dir)?;
    }
    let text = SecretBox::generate_key_base64();
    let new = SecretBox::from_base64(&text)?;
    SecretBox::write_next_key(dir, &text)?;
    let store = open(old).await?;
    match store.reseal_secrets(&new).await {
        Ok(n) => {
            drop(store);
            SecretBox::promote_next_key(dir)?;
            println!(
                "Re-encrypted the secrets of {n} destination(s) under a new key, now in {}.",
                dir.join(sluice_store::secrets::KEY_FILE).display()
            );
            Ok(())
        }
        Err(e) => {
            drop(store);
            SecretBox::discard_next_key(dir)?;
            Err(e).context("nothing was changed: the secrets stay under the current key")
        }
    }
}

/// `sluice secrets generate-key`: a key in the form `SLUICE_SECRET_KEY` takes.
pub fn generate_key() {
    println!("{}", SecretBox::generate_key_base64());
}
