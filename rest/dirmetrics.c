/*
 * rest/dirmetrics.c - GET /_metrics of a dir server: the server's own
 * series, then per-database series labelled database="<name>".
 */
#include "rest/dirint.h"

int verso__dir_metrics(verso_buf *b, verso__dir *d)
{
    return verso_buf_printf(b,
                            "# HELP verso_databases_open Databases open now.\n"
                            "# TYPE verso_databases_open gauge\nverso_databases_open %zu\n",
                            d->nopen);
}
