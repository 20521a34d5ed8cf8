/* version.h - the version of bosh-cm (sessiond, bosh-handler, boshctl). */
#ifndef BOSH_VERSION_H
#define BOSH_VERSION_H

#define BOSH_CM_VERSION "0.1"

#endif
