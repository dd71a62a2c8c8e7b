-- Facilities names no other service's schema (ADR 0023): the staff → auth.users foreign key
-- goes (0001 no longer creates it); FacilityService checks user ids through its
-- UserDirectory instead.
ALTER TABLE staff DROP CONSTRAINT IF EXISTS staff_user_id_fkey;
