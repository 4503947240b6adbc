// The explorer's the camera: zoom, pan, following the stepping, the overview map. (To be written.)
"use strict";
