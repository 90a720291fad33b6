//! keymix (under construction)
