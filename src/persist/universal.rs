//! `type = "universal"`: the session key is read from the request, where
//! `source` says (a header, cookie, query parameter or path segment). Rules
//! will compute keys later; `source` covers the common cases now.

use super::{Claim, Class, RequestView};
use crate::config::model::KeySource;

pub struct Universal(pub KeySource);

impl Class for Universal {
    fn claim<'a>(&self, req: &RequestView<'a>, _pool: usize) -> Claim<'a> {
        super::read_source(req, &self.0).map_or(Claim::None, |v| Claim::Key(v.into()))
    }
}
