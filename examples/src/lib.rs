//! examples (work in progress; not yet part of the product).
