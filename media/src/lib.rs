//! dialhound-media
