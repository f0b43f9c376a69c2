/*
 * Copyright (c) 2026 The ovs-vhost-dma authors.
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at:
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* DMA devices known to OVS.
 *
 * DPDK probes dmadevs like any other device: PCI devices bound to a DPDK
 * driver (I/OAT, DSA), or virtual devices such as the software
 * 'dma_skeleton'.  This module lists them for 'ovs-appctl dpdk-dma/show'.
 *
 * The dmadev API is experimental in DPDK 22.11, so this file (and no other)
 * enables it with ALLOW_EXPERIMENTAL_API. */

#define ALLOW_EXPERIMENTAL_API 1

#include <config.h>

#include "dpdk-dma.h"

#include <rte_dev.h>
#include <rte_dmadev.h>
#include <rte_errno.h>

#include "openvswitch/dynamic-string.h"
#include "openvswitch/vlog.h"
#include "unixctl.h"
#include "util.h"

VLOG_DEFINE_THIS_MODULE(dpdk_dma);

/* Names of the capabilities a dmadev reports, in the order of their bits. */
static const struct {
    uint64_t capa;
    const char *name;
} dma_capa_names[] = {
    { RTE_DMA_CAPA_MEM_TO_MEM, "mem2mem" },
    { RTE_DMA_CAPA_MEM_TO_DEV, "mem2dev" },
    { RTE_DMA_CAPA_DEV_TO_MEM, "dev2mem" },
    { RTE_DMA_CAPA_DEV_TO_DEV, "dev2dev" },
    { RTE_DMA_CAPA_SVA, "sva" },
    { RTE_DMA_CAPA_SILENT, "silent" },
    { RTE_DMA_CAPA_HANDLES_ERRORS, "handles-errors" },
    { RTE_DMA_CAPA_OPS_COPY, "copy" },
    { RTE_DMA_CAPA_OPS_COPY_SG, "copy-sg" },
    { RTE_DMA_CAPA_OPS_FILL, "fill" },
};

static void
dma_format_capa(struct ds *s, uint64_t capa)
{
    bool first = true;

    for (size_t i = 0; i < ARRAY_SIZE(dma_capa_names); i++) {
        if (capa & dma_capa_names[i].capa) {
            ds_put_format(s, "%s%s", first ? "" : ",", dma_capa_names[i].name);
            capa &= ~dma_capa_names[i].capa;
            first = false;
        }
    }
    if (capa) {
        ds_put_format(s, "%s0x%"PRIx64, first ? "" : ",", capa);
    }
}

/* Returns the name of the driver of the dmadev named 'dev_name', or "unknown"
 * if it is on none of the buses DMA devices are found on. */
static const char *
dma_driver_name(const char *dev_name)
{
    static const char *const buses[] = { "bus=vdev", "bus=pci", "bus=dsa" };
    const char *driver = "unknown";

    for (size_t i = 0; i < ARRAY_SIZE(buses); i++) {
        struct rte_dev_iterator it;
        struct rte_device *dev;

        /* rte_dev_iterator_init() returns -rte_errno even when it
         * succeeds, so a stale rte_errno would look like a failure. */
        rte_errno = 0;
        if (rte_dev_iterator_init(&it, buses[i])) {
            continue;
        }
        /* Iterate to the end, which frees the iterator's state. */
        while ((dev = rte_dev_iterator_next(&it)) != NULL) {
            const struct rte_driver *drv = rte_dev_driver(dev);

            if (drv && !strcmp(rte_dev_name(dev), dev_name)) {
                driver = rte_driver_name(drv);
            }
        }
    }
    return driver;
}

static void
dma_show_device(struct ds *s, int16_t dev_id)
{
    struct rte_dma_info info;

    if (rte_dma_info_get(dev_id, &info)) {
        ds_put_format(s, "dev_id %"PRId16": no information available\n",
                      dev_id);
        return;
    }
    ds_put_format(s, "%s:\n", info.dev_name);
    ds_put_format(s, "  dev_id: %"PRId16", driver: %s, numa_id: %d\n",
                  dev_id, dma_driver_name(info.dev_name), info.numa_node);
    ds_put_cstr(s, "  capabilities: ");
    dma_format_capa(s, info.dev_capa);
    ds_put_format(s, "\n  descriptors: %"PRIu16"..%"PRIu16
                  ", vchans: %"PRIu16"\n",
                  info.min_desc, info.max_desc, info.max_vchans);
}

static void
dpdk_dma_unixctl_show(struct unixctl_conn *conn, int argc,
                      const char *argv[], void *aux OVS_UNUSED)
{
    struct ds s = DS_EMPTY_INITIALIZER;
    int16_t dev_id;

    if (argc > 1) {
        dev_id = rte_dma_get_dev_id_by_name(argv[1]);
        if (dev_id < 0) {
            unixctl_command_reply_error(conn, "no such DMA device");
            return;
        }
        dma_show_device(&s, dev_id);
    } else if (!rte_dma_count_avail()) {
        ds_put_cstr(&s, "No DMA devices.  DPDK probed none: create them "
                    "with --vdev or PCI addresses in "
                    "other_config:dpdk-extra.\n");
    } else {
        RTE_DMA_FOREACH_DEV (dev_id) {
            dma_show_device(&s, dev_id);
        }
    }
    unixctl_command_reply(conn, ds_cstr(&s));
    ds_destroy(&s);
}

void
dpdk_dma_init(void)
{
    VLOG_INFO("%"PRIu16" DMA device(s) available", rte_dma_count_avail());
    unixctl_command_register("dpdk-dma/show", "[device]", 0, 1,
                             dpdk_dma_unixctl_show, NULL);
}
