-- Sample upstream database for lalo's Docker Compose demo: the "restaurants" database of
-- defog-ai/defog-data (data/restaurants/restaurants.sql), unchanged, followed by COMMENT ON
-- statements built from its column descriptions (data/restaurants/restaurants.json).
--
-- Origin: the defog-ai/defog-data repository. Licensed under the Apache License, Version 2.0
-- (the "License"); you may not use this file except in compliance with the License. You may
-- obtain a copy of the License at
--     http://www.apache.org/licenses/LICENSE-2.0
-- Unless required by applicable law or agreed to in writing, software distributed under the
-- License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND,
-- either express or implied. See the License for the specific language governing permissions
-- and limitations under the License. The full licence text is in deploy/postgres-seed/LICENSE.
--
-- The official postgres image runs this once, when its data volume is first initialised, as the
-- POSTGRES_USER in the POSTGRES_DB database.

CREATE TABLE public.geographic (
    city_name text,
    county text,
    region text
);


CREATE TABLE public.location (
    restaurant_id bigint,
    house_number bigint,
    street_name text,
    city_name text
);


CREATE TABLE public.restaurant (
    id bigint,
    name text,
    food_type text,
    city_name text,
    rating real
);


INSERT INTO public.geographic (city_name, county, region) VALUES
('Los Angeles', 'Los Angeles', 'California'),
('New York', 'New York', 'New York'),
('San Francisco', 'San Francisco', 'California'),
('Miami', 'Miami-Dade', 'Florida'),
('Chicago', 'Cook', 'Illinois')
;

INSERT INTO public.location (restaurant_id, house_number, street_name, city_name) VALUES
(1, 123, 'Main St', 'Los Angeles'),
(2, 456, 'Maple Ave', 'Los Angeles'),
(3, 789, 'Oak St', 'Los Angeles'),
(4, 321, 'Elm St', 'New York'),
(5, 654, 'Pine Ave', 'New York'),
(6, 123, 'Pine Ave', 'New York'),
(7, 12, 'Market St', 'San Francisco'),
(8, 34, 'Mission St', 'San Francisco'),
(9, 56, 'Valencia St', 'San Francisco'),
(10, 78, 'Ocean Dr', 'Miami'),
(11, 90, 'Biscayne Rd', 'Miami')
;

INSERT INTO public.restaurant (id, rating, name, food_type, city_name) VALUES
(1, 4.5, 'The Pasta House', 'Italian', 'Los Angeles'),
(2, 3.8, 'The Burger Joint', 'American', 'Los Angeles'),
(3, 4.2, 'The Sushi Bar', 'Japanese', 'Los Angeles'),
(4, 4.7, 'The Pizza Place', 'Italian', 'New York'),
(5, 3.9, 'The Steakhouse', 'American', 'New York'),
(6, 4.3, 'The Ramen Shop', 'Japanese', 'New York'),
(7, 4.1, 'The Tacos & Burritos', 'Mexican', 'San Francisco'),
(8, 4.6, 'The Vegan Cafe', 'Vegan', 'San Francisco'),
(9, 3.7, 'The BBQ Joint', 'American', 'San Francisco'),
(10, 4.4, 'The Seafood Shack', 'Seafood', 'Miami'),
(11, 4.6, 'The Seafood Shack', 'Seafood', 'Miami')
;

-- Column documentation (from restaurants.json), read by lalo as upstream comments.
COMMENT ON COLUMN public.geographic.city_name IS 'The name of the city';
COMMENT ON COLUMN public.geographic.county IS 'The name of the county';
COMMENT ON COLUMN public.geographic.region IS 'The name of the region';
COMMENT ON COLUMN public.location.restaurant_id IS 'Unique identifier for each restaurant';
COMMENT ON COLUMN public.location.house_number IS 'The number assigned to the building where the restaurant is located';
COMMENT ON COLUMN public.location.street_name IS 'The name of the street where the restaurant is located';
COMMENT ON COLUMN public.location.city_name IS 'The name of the city where the restaurant is located';
COMMENT ON COLUMN public.restaurant.id IS 'Unique identifier for each restaurant';
COMMENT ON COLUMN public.restaurant.rating IS 'The rating of the restaurant on a scale of 0 to 5';
COMMENT ON COLUMN public.restaurant.name IS 'The name of the restaurant';
COMMENT ON COLUMN public.restaurant.food_type IS 'The type of food served at the restaurant';
COMMENT ON COLUMN public.restaurant.city_name IS 'The city where the restaurant is located';
