package offline

import "errors"

// ErrContentModel is wrapped by every error about the content model file
// (ContentFile): missing (no build has run into the model directory), damaged,
// or written by another version. Publishing cannot go on until a build
// writes a good one; a rejected article is a *dataset.LineError instead.
var ErrContentModel = errors.New("unusable content model")
