-- Each event, with what the user window (03_user_features.sql) counts: the interaction kind (0
-- click, 1 add-to-cart, 2 purchase; null: not counted), and the category and time of an
-- interaction with a category (the user's recent category). Only the columns read downstream go
-- on: the rows cross to the user window's keyed operator and back.
CREATE TEMPORARY VIEW user_events AS
SELECT event_id, type, ts, event_time, rowtime, user_id, request_id, query, device, platform,
  item_ids, item_positions, item_prices, item_categories, item_brands, item_id, price,
  CASE type WHEN 'click' THEN 0 WHEN 'add_to_cart' THEN 1 WHEN 'purchase' THEN 2 END AS interaction_kind,
  CASE WHEN type IN ('click', 'add_to_cart', 'purchase') THEN category END AS interaction_category,
  CASE WHEN type IN ('click', 'add_to_cart', 'purchase') AND category IS NOT NULL
    THEN event_time END AS interaction_time
FROM events;
