#include "cs_row.h"

#include <string.h>

#include "cs_time.h"

void cs_row_to_json(const cs_row *row, cs_buf *b) {
  char ts[CS_TIME_RFC3339_LEN + 1];
  cs_buf_puts(b, "{\"product_id\":");
  cs_buf_json_str(b, row->product_id, strlen(row->product_id));
  cs_time_format_rfc3339(row->window_start_us, ts);
  cs_buf_printf(b, ",\"window_start\":\"%s\"", ts);
  cs_time_format_rfc3339(row->window_end_us, ts);
  cs_buf_printf(b, ",\"window_end\":\"%s\"", ts);
  if (row->aggs & CS_AGG_TRADES) cs_buf_printf(b, ",\"trades\":%llu", (unsigned long long)row->trades);
  const double vals[CS_AGG_COUNT] = {0,         row->avg_price, row->vwap,   row->open,       row->high,
                                     row->low,  row->close,     row->volume, row->buy_volume, row->sell_volume};
  for (int i = 1; i < CS_AGG_COUNT; i++) {
    if (!(row->aggs & (1u << i))) continue;
    cs_buf_printf(b, ",\"%s\":", cs_agg_names[i]);
    cs_buf_json_num(b, vals[i]);
  }
  if (row->ext_json && row->ext_json[0]) {
    cs_buf_append(b, ",", 1);
    cs_buf_puts(b, row->ext_json);
  }
  cs_buf_append(b, "}", 1);
}
