//! `type = "universal"`: the session key is read from the request, where
//! `source` says (a header, cookie, query parameter or path segment). Rules
//! will compute keys later; `source` covers the common cases now.

use super::{Claim, Class, RequestView};
use crate::config::model::KeySource;

pub struct Universal(pub KeySource);

impl Class for Universal {
    fn claim(&self, req: &RequestView<'_>, _pool: usize) -> Claim {
        super::read_source(req, &self.0).map_or(Claim::None, |v| Claim::Key(v.to_vec()))
    }
}
