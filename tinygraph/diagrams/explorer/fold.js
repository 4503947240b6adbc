// The explorer's folded time steps and the time scrubber. (To be written.)
"use strict";
