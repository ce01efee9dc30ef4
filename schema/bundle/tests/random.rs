//! Random input never panics the verifier, and no single-byte change of a
//! valid bundle is ever accepted.

use crate::common::*;
use proptest::prelude::*;
use ringfence_bundle::{Reason, verify_bundle, verify_index};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(verify_bundle(&bytes, &trust(), &expect()).is_err());
        prop_assert!(verify_index(&bytes, &trust()).is_err());
    }

    #[test]
    fn envelope_shaped_junk_is_refused_without_panic(
        payload_type in "[a-z./+0-9-]{0,48}",
        payload in "[A-Za-z0-9+/=]{0,200}",
        keyid in "[0-9a-f]{0,64}",
        sig in "[A-Za-z0-9+/=]{0,100}",
    ) {
        let text = format!(
            "{{\"payloadType\":\"{payload_type}\",\"payload\":\"{payload}\",\"signatures\":[{{\"keyid\":\"{keyid}\",\"sig\":\"{sig}\"}}]}}\n"
        );
        prop_assert!(verify_bundle(text.as_bytes(), &trust(), &expect()).is_err());
    }

    #[test]
    fn no_single_byte_change_of_a_bundle_is_accepted(pos in any::<prop::sample::Index>(), new in any::<u8>()) {
        let mut bytes = bundle();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != new);
        bytes[i] = new;
        let e = verify_bundle(&bytes, &trust(), &expect()).unwrap_err();
        // Whatever broke, it was not waved through as a content problem.
        prop_assert!(e.reason != Reason::DigestMismatch, "{e}");
    }
}
