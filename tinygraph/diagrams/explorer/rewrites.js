// The explorer's the replay of the rewrite log, generated -> simplified. (To be written.)
"use strict";
