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

#ifndef DPDK_DMA_H
#define DPDK_DMA_H 1

/* DMA devices (DPDK dmadevs) known to Open vSwitch.
 *
 * This module is the only user of DPDK's experimental dmadev API in OVS: the
 * rest of OVS sees DMA devices only through the functions declared here.
 *
 * Thread-safety
 * =============
 *
 * Unless a comment says otherwise, the functions below must be called from
 * the main thread, after DPDK's EAL was initialized. */

/* Registers the "dpdk-dma/" unixctl commands.  Called once, from dpdk_init(),
 * right after the EAL was initialized. */
void dpdk_dma_init(void);

#endif /* dpdk-dma.h */
