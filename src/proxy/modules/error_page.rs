//! shoal's own error pages as a module (B12): in the `error` phase, the
//! virtual server's `error_file` replaces the body of shoal's 502, 503 and
//! 504 responses, and `error_action = "close"` closes the connection
//! instead of sending them.

use crate::config::ErrorAction;
use crate::proxy::module::Module;
use crate::proxy::own::OwnResponse;
use crate::proxy::txn::Txn;

pub struct ErrorPage;

impl Module for ErrorPage {
    type Ctx = ();

    fn name(&self) -> &'static str {
        "error_page"
    }

    fn error(&self, tx: &mut Txn, _: &mut (), resp: &mut OwnResponse) {
        if !matches!(resp.head.status, 502..=504) {
            return;
        }
        let http = &tx.vs_config().http;
        if http.error_action == ErrorAction::Close {
            resp.close_instead = true;
        } else if let Some(page) = &http.error_page {
            resp.set_body("text/html", page.clone());
        }
    }
}
