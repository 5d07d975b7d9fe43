/* cdi: can this host give a CDI device ("nvidia.com/gpu=0", "=all")?
 *
 * Reads the CDI spec files (*.json, and the *.yaml that `nvidia-ctk cdi
 * generate` writes) in the directories Podman reads: /etc/cdi and
 * /var/run/cdi, or the colon-separated list in HERMES_CDI_DIR (tests). A
 * device can be given when a spec of its kind names it (any device for
 * "all") and every device node the spec lists for it exists on this host.
 * Only the fields needed for that are read, not the whole CDI format.
 */
#ifndef HERMES_CDI_H
#define HERMES_CDI_H

#include "buf.h"

/* 0, or -ENODEV with one line in err naming what is missing:
 *   "no CDI spec for nvidia.com/gpu in /etc/cdi or /var/run/cdi (...)"
 *   "no CDI device nvidia.com/gpu=3 in FILE (it names: 0 1)"
 *   "no nvidia device: /dev/nvidia0 missing (named by FILE for nvidia.com/gpu=0)"
 * -EINVAL for a name without '='. */
int cdi_check(const char *device, struct buf *err);

#endif
